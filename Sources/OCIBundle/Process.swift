/// The container process (config.md "Process"); also the document `exec --process` reads.
///
/// Foundation has a `Process` class too: where both are imported, write `Spec.Process`
/// (or `OCIBundle.Process`).
public struct Process: Codable, Equatable, Sendable {
    public var terminal: Bool?
    public var consoleSize: Box?
    public var user: User
    public var args: [String]?
    /// Windows only; kept so that it round-trips.
    public var commandLine: String?
    public var env: [String]?
    /// Absolute path inside the container.
    public var cwd: String
    public var capabilities: Capabilities?
    public var rlimits: [Rlimit]?
    public var noNewPrivileges: Bool?
    public var apparmorProfile: String?
    public var oomScoreAdj: Int?
    public var selinuxLabel: String?
    public var ioPriority: IOPriority?
    public var scheduler: Scheduler?

    public init(
        terminal: Bool? = nil, consoleSize: Box? = nil, user: User = User(), args: [String]? = nil,
        commandLine: String? = nil, env: [String]? = nil, cwd: String = "/", capabilities: Capabilities? = nil,
        rlimits: [Rlimit]? = nil, noNewPrivileges: Bool? = nil, apparmorProfile: String? = nil,
        oomScoreAdj: Int? = nil, selinuxLabel: String? = nil, ioPriority: IOPriority? = nil,
        scheduler: Scheduler? = nil
    ) {
        self.terminal = terminal
        self.consoleSize = consoleSize
        self.user = user
        self.args = args
        self.commandLine = commandLine
        self.env = env
        self.cwd = cwd
        self.capabilities = capabilities
        self.rlimits = rlimits
        self.noNewPrivileges = noNewPrivileges
        self.apparmorProfile = apparmorProfile
        self.oomScoreAdj = oomScoreAdj
        self.selinuxLabel = selinuxLabel
        self.ioPriority = ioPriority
        self.scheduler = scheduler
    }

    enum CodingKeys: String, CodingKey {
        case terminal, consoleSize, user, args, commandLine, env, cwd, capabilities, rlimits
        case noNewPrivileges, apparmorProfile, oomScoreAdj, selinuxLabel, ioPriority, scheduler
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        terminal = try c.decodeIfPresent(Bool.self, forKey: .terminal)
        consoleSize = try c.decodeIfPresent(Box.self, forKey: .consoleSize)
        user = try c.decode(User.self, forKey: .user, or: User())
        args = try c.decodeIfPresent([String].self, forKey: .args)
        commandLine = try c.decodeIfPresent(String.self, forKey: .commandLine)
        env = try c.decodeIfPresent([String].self, forKey: .env)
        cwd = try c.decode(String.self, forKey: .cwd, or: "")
        capabilities = try c.decodeIfPresent(Capabilities.self, forKey: .capabilities)
        rlimits = try c.decodeIfPresent([Rlimit].self, forKey: .rlimits)
        noNewPrivileges = try c.decodeIfPresent(Bool.self, forKey: .noNewPrivileges)
        apparmorProfile = try c.decodeIfPresent(String.self, forKey: .apparmorProfile)
        oomScoreAdj = try c.decodeIfPresent(Int.self, forKey: .oomScoreAdj)
        selinuxLabel = try c.decodeIfPresent(String.self, forKey: .selinuxLabel)
        ioPriority = try c.decodeIfPresent(IOPriority.self, forKey: .ioPriority)
        scheduler = try c.decodeIfPresent(Scheduler.self, forKey: .scheduler)
    }
}

/// A console size in characters.
public struct Box: Codable, Equatable, Sendable {
    public var height: UInt
    public var width: UInt

    public init(height: UInt, width: UInt) {
        self.height = height
        self.width = width
    }

    enum CodingKeys: String, CodingKey { case height, width }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        height = try c.decode(UInt.self, forKey: .height, or: 0)
        width = try c.decode(UInt.self, forKey: .width, or: 0)
    }
}

/// The user the process runs as.
public struct User: Codable, Equatable, Sendable {
    public var uid: UInt32
    public var gid: UInt32
    public var umask: UInt32?
    public var additionalGids: [UInt32]?
    /// Windows only; kept so that it round-trips.
    public var username: String?

    public init(uid: UInt32 = 0, gid: UInt32 = 0, umask: UInt32? = nil, additionalGids: [UInt32]? = nil, username: String? = nil) {
        self.uid = uid
        self.gid = gid
        self.umask = umask
        self.additionalGids = additionalGids
        self.username = username
    }

    enum CodingKeys: String, CodingKey { case uid, gid, umask, additionalGids, username }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        uid = try c.decode(UInt32.self, forKey: .uid, or: 0)
        gid = try c.decode(UInt32.self, forKey: .gid, or: 0)
        umask = try c.decodeIfPresent(UInt32.self, forKey: .umask)
        additionalGids = try c.decodeIfPresent([UInt32].self, forKey: .additionalGids)
        username = try c.decodeIfPresent(String.self, forKey: .username)
    }
}
