/// Lifecycle hooks (config.md "POSIX-platform Hooks").
public struct Hooks: Codable, Equatable, Sendable {
    /// Deprecated by the spec in favour of `createRuntime`, `createContainer` and `startContainer`.
    public var prestart: [Hook]?
    public var createRuntime: [Hook]?
    public var createContainer: [Hook]?
    public var startContainer: [Hook]?
    public var poststart: [Hook]?
    public var poststop: [Hook]?

    public init(
        prestart: [Hook]? = nil, createRuntime: [Hook]? = nil, createContainer: [Hook]? = nil,
        startContainer: [Hook]? = nil, poststart: [Hook]? = nil, poststop: [Hook]? = nil
    ) {
        self.prestart = prestart
        self.createRuntime = createRuntime
        self.createContainer = createContainer
        self.startContainer = startContainer
        self.poststart = poststart
        self.poststop = poststop
    }

    /// Every list with its JSON name, in lifecycle order.
    public var all: [(name: String, hooks: [Hook])] {
        [
            ("prestart", prestart), ("createRuntime", createRuntime), ("createContainer", createContainer),
            ("startContainer", startContainer), ("poststart", poststart), ("poststop", poststop),
        ].compactMap { name, hooks in hooks.map { (name, $0) } }
    }

    /// The hook names this library knows (for the features document).
    public static let names = ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"]
}

/// A program run at a point of the container's lifecycle; it gets the state JSON on stdin.
public struct Hook: Codable, Equatable, Sendable {
    /// Absolute path of the executable.
    public var path: String
    public var args: [String]?
    public var env: [String]?
    /// Seconds; greater than zero when set.
    public var timeout: Int?

    public init(path: String, args: [String]? = nil, env: [String]? = nil, timeout: Int? = nil) {
        self.path = path
        self.args = args
        self.env = env
        self.timeout = timeout
    }

    enum CodingKeys: String, CodingKey { case path, args, env, timeout }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        path = try c.decode(String.self, forKey: .path, or: "")
        args = try c.decodeIfPresent([String].self, forKey: .args)
        env = try c.decodeIfPresent([String].self, forKey: .env)
        timeout = try c.decodeIfPresent(Int.self, forKey: .timeout)
    }
}
