/// A POSIX resource limit for the process.
public struct Rlimit: Codable, Equatable, Sendable {
    public var type: RlimitType
    public var hard: UInt64
    public var soft: UInt64

    public init(type: RlimitType, hard: UInt64, soft: UInt64) {
        self.type = type
        self.hard = hard
        self.soft = soft
    }

    enum CodingKeys: String, CodingKey { case type, hard, soft }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        type = try c.decode(RlimitType.self, forKey: .type, or: "")
        hard = try c.decode(UInt64.self, forKey: .hard, or: 0)
        soft = try c.decode(UInt64.self, forKey: .soft, or: 0)
    }
}

/// `RLIMIT_NOFILE`, ...: the names of getrlimit(2).
public struct RlimitType: OCIString {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }

    public static let cpu: Self = "RLIMIT_CPU"
    public static let fsize: Self = "RLIMIT_FSIZE"
    public static let data: Self = "RLIMIT_DATA"
    public static let stack: Self = "RLIMIT_STACK"
    public static let core: Self = "RLIMIT_CORE"
    public static let rss: Self = "RLIMIT_RSS"
    public static let nproc: Self = "RLIMIT_NPROC"
    public static let nofile: Self = "RLIMIT_NOFILE"
    public static let memlock: Self = "RLIMIT_MEMLOCK"
    public static let `as`: Self = "RLIMIT_AS"
    public static let locks: Self = "RLIMIT_LOCKS"
    public static let sigpending: Self = "RLIMIT_SIGPENDING"
    public static let msgqueue: Self = "RLIMIT_MSGQUEUE"
    public static let nice: Self = "RLIMIT_NICE"
    public static let rtprio: Self = "RLIMIT_RTPRIO"
    public static let rttime: Self = "RLIMIT_RTTIME"

    /// In the order of the kernel's resource numbers (`known.firstIndex(of:)` is the number on Linux).
    public static let known: [Self] = [
        cpu, fsize, data, stack, core, rss, nproc, nofile, memlock, `as`, locks, sigpending, msgqueue, nice, rtprio, rttime,
    ]

    /// The Linux resource number (`RLIMIT_NOFILE` is 7), or nil for an unknown name.
    public var number: Int32? { Self.known.firstIndex(of: self).map(Int32.init) }
}
