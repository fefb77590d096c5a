/// The Linux section of config.json (config-linux.md).
public struct Linux: Codable, Equatable, Sendable {
    public var namespaces: [Namespace]?
    public var uidMappings: [IDMapping]?
    public var gidMappings: [IDMapping]?
    public var timeOffsets: [String: TimeOffset]?
    public var devices: [Device]?
    public var cgroupsPath: String?
    public var resources: Resources?
    public var sysctl: [String: String]?
    public var seccomp: Seccomp?
    public var rootfsPropagation: MountPropagation?
    public var maskedPaths: [String]?
    public var readonlyPaths: [String]?
    public var mountLabel: String?
    public var intelRdt: IntelRdt?
    public var personality: Personality?

    public init(
        namespaces: [Namespace]? = nil, uidMappings: [IDMapping]? = nil, gidMappings: [IDMapping]? = nil,
        timeOffsets: [String: TimeOffset]? = nil, devices: [Device]? = nil, cgroupsPath: String? = nil,
        resources: Resources? = nil, sysctl: [String: String]? = nil, seccomp: Seccomp? = nil,
        rootfsPropagation: MountPropagation? = nil, maskedPaths: [String]? = nil, readonlyPaths: [String]? = nil,
        mountLabel: String? = nil, intelRdt: IntelRdt? = nil, personality: Personality? = nil
    ) {
        self.namespaces = namespaces
        self.uidMappings = uidMappings
        self.gidMappings = gidMappings
        self.timeOffsets = timeOffsets
        self.devices = devices
        self.cgroupsPath = cgroupsPath
        self.resources = resources
        self.sysctl = sysctl
        self.seccomp = seccomp
        self.rootfsPropagation = rootfsPropagation
        self.maskedPaths = maskedPaths
        self.readonlyPaths = readonlyPaths
        self.mountLabel = mountLabel
        self.intelRdt = intelRdt
        self.personality = personality
    }

    /// The entry for `type`, if the container has one (a new namespace, or one joined by `path`).
    public func namespace(_ type: NamespaceType) -> Namespace? {
        namespaces?.first { $0.type == type }
    }
}

/// A namespace to create, or to join when `path` is set.
public struct Namespace: Codable, Equatable, Sendable {
    public var type: NamespaceType
    public var path: String?

    public init(type: NamespaceType, path: String? = nil) {
        self.type = type
        self.path = path
    }

    enum CodingKeys: String, CodingKey { case type, path }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        type = try c.decode(NamespaceType.self, forKey: .type, or: "")
        path = try c.decodeIfPresent(String.self, forKey: .path)
    }
}

public struct NamespaceType: OCIString {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }

    public static let pid: Self = "pid"
    public static let network: Self = "network"
    public static let mount: Self = "mount"
    public static let ipc: Self = "ipc"
    public static let uts: Self = "uts"
    public static let user: Self = "user"
    public static let cgroup: Self = "cgroup"
    public static let time: Self = "time"
    public static let known: [Self] = [pid, network, mount, ipc, uts, user, cgroup, time]
}

/// A range of user or group ids mapped into a user namespace (or an idmapped mount).
public struct IDMapping: Codable, Equatable, Sendable {
    public var containerID: UInt32
    public var hostID: UInt32
    public var size: UInt32

    public init(containerID: UInt32, hostID: UInt32, size: UInt32) {
        self.containerID = containerID
        self.hostID = hostID
        self.size = size
    }

    enum CodingKeys: String, CodingKey { case containerID, hostID, size }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        containerID = try c.decode(UInt32.self, forKey: .containerID, or: 0)
        hostID = try c.decode(UInt32.self, forKey: .hostID, or: 0)
        size = try c.decode(UInt32.self, forKey: .size, or: 0)
    }
}

/// A clock offset for a time namespace (keys of `timeOffsets` are "boottime" and "monotonic").
public struct TimeOffset: Codable, Equatable, Sendable {
    public var secs: Int64?
    public var nanosecs: UInt32?

    public init(secs: Int64? = nil, nanosecs: UInt32? = nil) {
        self.secs = secs
        self.nanosecs = nanosecs
    }
}

/// A device node to create in the container.
public struct Device: Codable, Equatable, Sendable {
    public var type: DeviceType
    public var path: String
    public var major: Int64
    public var minor: Int64
    public var fileMode: UInt32?
    public var uid: UInt32?
    public var gid: UInt32?

    public init(type: DeviceType, path: String, major: Int64 = 0, minor: Int64 = 0, fileMode: UInt32? = nil, uid: UInt32? = nil, gid: UInt32? = nil) {
        self.type = type
        self.path = path
        self.major = major
        self.minor = minor
        self.fileMode = fileMode
        self.uid = uid
        self.gid = gid
    }

    enum CodingKeys: String, CodingKey { case type, path, major, minor, fileMode, uid, gid }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        type = try c.decode(DeviceType.self, forKey: .type, or: "")
        path = try c.decode(String.self, forKey: .path, or: "")
        major = try c.decode(Int64.self, forKey: .major, or: 0)
        minor = try c.decode(Int64.self, forKey: .minor, or: 0)
        fileMode = try c.decodeIfPresent(UInt32.self, forKey: .fileMode)
        uid = try c.decodeIfPresent(UInt32.self, forKey: .uid)
        gid = try c.decodeIfPresent(UInt32.self, forKey: .gid)
    }
}

/// A device type: `c`, `b`, `u`, `p` for device nodes; `a`, `c`, `b` in cgroup device rules.
public struct DeviceType: OCIString {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }

    public static let all: Self = "a"
    public static let char: Self = "c"
    public static let block: Self = "b"
    public static let unbufferedChar: Self = "u"
    public static let fifo: Self = "p"
    public static let known: [Self] = [char, block, unbufferedChar, fifo, all]
    /// What a `linux.devices` entry may be.
    public static let nodeTypes: [Self] = [char, block, unbufferedChar, fifo]
    /// What a `linux.resources.devices` rule may be.
    public static let ruleTypes: [Self] = [all, char, block]
}

/// Mount propagation of the root filesystem.
public struct MountPropagation: OCIString {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }

    public static let shared: Self = "shared"
    public static let rshared: Self = "rshared"
    public static let slave: Self = "slave"
    public static let rslave: Self = "rslave"
    public static let `private`: Self = "private"
    public static let rprivate: Self = "rprivate"
    public static let unbindable: Self = "unbindable"
    public static let runbindable: Self = "runbindable"
    public static let known: [Self] = [shared, rshared, slave, rslave, `private`, rprivate, unbindable, runbindable]
}

/// Intel RDT (resctrl) settings.
public struct IntelRdt: Codable, Equatable, Sendable {
    public var closID: String?
    public var l3CacheSchema: String?
    public var memBwSchema: String?
    public var enableCMT: Bool?
    public var enableMBM: Bool?

    public init(
        closID: String? = nil, l3CacheSchema: String? = nil, memBwSchema: String? = nil,
        enableCMT: Bool? = nil, enableMBM: Bool? = nil
    ) {
        self.closID = closID
        self.l3CacheSchema = l3CacheSchema
        self.memBwSchema = memBwSchema
        self.enableCMT = enableCMT
        self.enableMBM = enableMBM
    }
}

/// personality(2) for the container process.
public struct Personality: Codable, Equatable, Sendable {
    public var domain: PersonalityDomain
    public var flags: [String]?

    public init(domain: PersonalityDomain, flags: [String]? = nil) {
        self.domain = domain
        self.flags = flags
    }

    enum CodingKeys: String, CodingKey { case domain, flags }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        domain = try c.decode(PersonalityDomain.self, forKey: .domain, or: "")
        flags = try c.decodeIfPresent([String].self, forKey: .flags)
    }
}

public struct PersonalityDomain: OCIString {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }

    public static let linux: Self = "LINUX"
    public static let linux32: Self = "LINUX32"
    public static let known: [Self] = [linux, linux32]
}
