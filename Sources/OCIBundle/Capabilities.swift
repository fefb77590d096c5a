/// The process's capability sets.
public struct Capabilities: Codable, Equatable, Sendable {
    public var bounding: [Capability]?
    public var effective: [Capability]?
    public var inheritable: [Capability]?
    public var permitted: [Capability]?
    public var ambient: [Capability]?

    public init(
        bounding: [Capability]? = nil, effective: [Capability]? = nil, inheritable: [Capability]? = nil,
        permitted: [Capability]? = nil, ambient: [Capability]? = nil
    ) {
        self.bounding = bounding
        self.effective = effective
        self.inheritable = inheritable
        self.permitted = permitted
        self.ambient = ambient
    }

    /// The same list in the bounding, effective and permitted sets (what `runc spec` writes).
    public static func uniform(_ capabilities: [Capability]) -> Capabilities {
        Capabilities(bounding: capabilities, effective: capabilities, permitted: capabilities)
    }
}

/// A Linux capability name, `CAP_` prefixed as the spec writes it.
/// runc ignores (with a warning) names it does not know, so validation does not reject them.
public struct Capability: OCIString {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }

    public static let chown: Self = "CAP_CHOWN"
    public static let dacOverride: Self = "CAP_DAC_OVERRIDE"
    public static let dacReadSearch: Self = "CAP_DAC_READ_SEARCH"
    public static let fowner: Self = "CAP_FOWNER"
    public static let fsetid: Self = "CAP_FSETID"
    public static let kill: Self = "CAP_KILL"
    public static let setgid: Self = "CAP_SETGID"
    public static let setuid: Self = "CAP_SETUID"
    public static let setpcap: Self = "CAP_SETPCAP"
    public static let linuxImmutable: Self = "CAP_LINUX_IMMUTABLE"
    public static let netBindService: Self = "CAP_NET_BIND_SERVICE"
    public static let netBroadcast: Self = "CAP_NET_BROADCAST"
    public static let netAdmin: Self = "CAP_NET_ADMIN"
    public static let netRaw: Self = "CAP_NET_RAW"
    public static let ipcLock: Self = "CAP_IPC_LOCK"
    public static let ipcOwner: Self = "CAP_IPC_OWNER"
    public static let sysModule: Self = "CAP_SYS_MODULE"
    public static let sysRawio: Self = "CAP_SYS_RAWIO"
    public static let sysChroot: Self = "CAP_SYS_CHROOT"
    public static let sysPtrace: Self = "CAP_SYS_PTRACE"
    public static let sysPacct: Self = "CAP_SYS_PACCT"
    public static let sysAdmin: Self = "CAP_SYS_ADMIN"
    public static let sysBoot: Self = "CAP_SYS_BOOT"
    public static let sysNice: Self = "CAP_SYS_NICE"
    public static let sysResource: Self = "CAP_SYS_RESOURCE"
    public static let sysTime: Self = "CAP_SYS_TIME"
    public static let sysTtyConfig: Self = "CAP_SYS_TTY_CONFIG"
    public static let mknod: Self = "CAP_MKNOD"
    public static let lease: Self = "CAP_LEASE"
    public static let auditWrite: Self = "CAP_AUDIT_WRITE"
    public static let auditControl: Self = "CAP_AUDIT_CONTROL"
    public static let setfcap: Self = "CAP_SETFCAP"
    public static let macOverride: Self = "CAP_MAC_OVERRIDE"
    public static let macAdmin: Self = "CAP_MAC_ADMIN"
    public static let syslog: Self = "CAP_SYSLOG"
    public static let wakeAlarm: Self = "CAP_WAKE_ALARM"
    public static let blockSuspend: Self = "CAP_BLOCK_SUSPEND"
    public static let auditRead: Self = "CAP_AUDIT_READ"
    public static let perfmon: Self = "CAP_PERFMON"
    public static let bpf: Self = "CAP_BPF"
    public static let checkpointRestore: Self = "CAP_CHECKPOINT_RESTORE"

    /// In the kernel's numbering (`known.firstIndex(of:)` is the capability number).
    public static let known: [Self] = [
        chown, dacOverride, dacReadSearch, fowner, fsetid, kill, setgid, setuid, setpcap, linuxImmutable,
        netBindService, netBroadcast, netAdmin, netRaw, ipcLock, ipcOwner, sysModule, sysRawio, sysChroot, sysPtrace,
        sysPacct, sysAdmin, sysBoot, sysNice, sysResource, sysTime, sysTtyConfig, mknod, lease, auditWrite,
        auditControl, setfcap, macOverride, macAdmin, syslog, wakeAlarm, blockSuspend, auditRead, perfmon, bpf,
        checkpointRestore,
    ]

    /// The kernel's capability number (`CAP_KILL` is 5), or nil for an unknown name.
    public var number: Int32? { Self.known.firstIndex(of: self).map(Int32.init) }
}
