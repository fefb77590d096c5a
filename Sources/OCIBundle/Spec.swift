/// config.json: the container's configuration (runtime-spec config.md, Linux parts).
///
/// Optional fields of the spec are optionals here and are left out when encoding; unknown keys
/// are ignored when decoding. Fields the spec requires decode to Go's zero value when missing
/// (as runc does) and `validate()` reports them.
public struct Spec: Codable, Equatable, Sendable {
    /// The spec version this library writes.
    public static let version = "1.2.0"

    public var ociVersion: String
    public var process: Process?
    public var root: Root?
    public var hostname: String?
    public var domainname: String?
    public var mounts: [Mount]?
    public var hooks: Hooks?
    public var annotations: [String: String]?
    public var linux: Linux?

    /// `Process` also names a Foundation class: in a file that imports Foundation, write `Spec.Process`.
    public typealias Process = OCIBundle.Process

    public init(
        ociVersion: String = Spec.version, process: Process? = nil, root: Root? = nil,
        hostname: String? = nil, domainname: String? = nil, mounts: [Mount]? = nil,
        hooks: Hooks? = nil, annotations: [String: String]? = nil, linux: Linux? = nil
    ) {
        self.ociVersion = ociVersion
        self.process = process
        self.root = root
        self.hostname = hostname
        self.domainname = domainname
        self.mounts = mounts
        self.hooks = hooks
        self.annotations = annotations
        self.linux = linux
    }

    enum CodingKeys: String, CodingKey {
        case ociVersion, process, root, hostname, domainname, mounts, hooks, annotations, linux
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        ociVersion = try c.decode(String.self, forKey: .ociVersion, or: "")
        process = try c.decodeIfPresent(Process.self, forKey: .process)
        root = try c.decodeIfPresent(Root.self, forKey: .root)
        hostname = try c.decodeIfPresent(String.self, forKey: .hostname)
        domainname = try c.decodeIfPresent(String.self, forKey: .domainname)
        mounts = try c.decodeIfPresent([Mount].self, forKey: .mounts)
        hooks = try c.decodeIfPresent(Hooks.self, forKey: .hooks)
        annotations = try c.decodeIfPresent([String: String].self, forKey: .annotations)
        linux = try c.decodeIfPresent(Linux.self, forKey: .linux)
    }
}

/// The container's root filesystem.
public struct Root: Codable, Equatable, Sendable {
    /// Absolute, or relative to the bundle directory.
    public var path: String
    public var readonly: Bool?

    public init(path: String, readonly: Bool? = nil) {
        self.path = path
        self.readonly = readonly
    }

    enum CodingKeys: String, CodingKey { case path, readonly }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        path = try c.decode(String.self, forKey: .path, or: "")
        readonly = try c.decodeIfPresent(Bool.self, forKey: .readonly)
    }
}

/// A mount on top of the root filesystem.
public struct Mount: Codable, Equatable, Sendable {
    /// Absolute path inside the container.
    public var destination: String
    public var type: String?
    public var source: String?
    public var options: [String]?
    /// Idmapped mount (spec 1.2).
    public var uidMappings: [IDMapping]?
    public var gidMappings: [IDMapping]?

    public init(
        destination: String, type: String? = nil, source: String? = nil, options: [String]? = nil,
        uidMappings: [IDMapping]? = nil, gidMappings: [IDMapping]? = nil
    ) {
        self.destination = destination
        self.type = type
        self.source = source
        self.options = options
        self.uidMappings = uidMappings
        self.gidMappings = gidMappings
    }

    enum CodingKeys: String, CodingKey { case destination, type, source, options, uidMappings, gidMappings }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        destination = try c.decode(String.self, forKey: .destination, or: "")
        type = try c.decodeIfPresent(String.self, forKey: .type)
        source = try c.decodeIfPresent(String.self, forKey: .source)
        options = try c.decodeIfPresent([String].self, forKey: .options)
        uidMappings = try c.decodeIfPresent([IDMapping].self, forKey: .uidMappings)
        gidMappings = try c.decodeIfPresent([IDMapping].self, forKey: .gidMappings)
    }
}
