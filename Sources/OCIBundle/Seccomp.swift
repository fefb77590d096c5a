/// The seccomp filter (config-linux.md "Seccomp").
public struct Seccomp: Codable, Equatable, Sendable {
    public var defaultAction: SeccompAction
    public var defaultErrnoRet: UInt32?
    public var architectures: [SeccompArch]?
    public var flags: [SeccompFlag]?
    public var listenerPath: String?
    public var listenerMetadata: String?
    public var syscalls: [Syscall]?

    public init(
        defaultAction: SeccompAction, defaultErrnoRet: UInt32? = nil, architectures: [SeccompArch]? = nil,
        flags: [SeccompFlag]? = nil, listenerPath: String? = nil, listenerMetadata: String? = nil,
        syscalls: [Syscall]? = nil
    ) {
        self.defaultAction = defaultAction
        self.defaultErrnoRet = defaultErrnoRet
        self.architectures = architectures
        self.flags = flags
        self.listenerPath = listenerPath
        self.listenerMetadata = listenerMetadata
        self.syscalls = syscalls
    }

    enum CodingKeys: String, CodingKey {
        case defaultAction, defaultErrnoRet, architectures, flags, listenerPath, listenerMetadata, syscalls
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        defaultAction = try c.decode(SeccompAction.self, forKey: .defaultAction, or: "")
        defaultErrnoRet = try c.decodeIfPresent(UInt32.self, forKey: .defaultErrnoRet)
        architectures = try c.decodeIfPresent([SeccompArch].self, forKey: .architectures)
        flags = try c.decodeIfPresent([SeccompFlag].self, forKey: .flags)
        listenerPath = try c.decodeIfPresent(String.self, forKey: .listenerPath)
        listenerMetadata = try c.decodeIfPresent(String.self, forKey: .listenerMetadata)
        syscalls = try c.decodeIfPresent([Syscall].self, forKey: .syscalls)
    }
}

/// A rule: `action` for the syscalls in `names` (when all `args` match).
public struct Syscall: Codable, Equatable, Sendable {
    public var names: [String]
    public var action: SeccompAction
    public var errnoRet: UInt32?
    public var args: [SeccompArg]?

    public init(names: [String], action: SeccompAction, errnoRet: UInt32? = nil, args: [SeccompArg]? = nil) {
        self.names = names
        self.action = action
        self.errnoRet = errnoRet
        self.args = args
    }

    enum CodingKeys: String, CodingKey { case names, action, errnoRet, args }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        names = try c.decode([String].self, forKey: .names, or: [])
        action = try c.decode(SeccompAction.self, forKey: .action, or: "")
        errnoRet = try c.decodeIfPresent(UInt32.self, forKey: .errnoRet)
        args = try c.decodeIfPresent([SeccompArg].self, forKey: .args)
    }
}

/// A comparison of syscall argument `index` with `value` (and `valueTwo` for SCMP_CMP_MASKED_EQ).
public struct SeccompArg: Codable, Equatable, Sendable {
    public var index: UInt32
    public var value: UInt64
    public var valueTwo: UInt64?
    public var op: SeccompOperator

    public init(index: UInt32, value: UInt64, valueTwo: UInt64? = nil, op: SeccompOperator) {
        self.index = index
        self.value = value
        self.valueTwo = valueTwo
        self.op = op
    }

    enum CodingKeys: String, CodingKey { case index, value, valueTwo, op }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        index = try c.decode(UInt32.self, forKey: .index, or: 0)
        value = try c.decode(UInt64.self, forKey: .value, or: 0)
        valueTwo = try c.decodeIfPresent(UInt64.self, forKey: .valueTwo)
        op = try c.decode(SeccompOperator.self, forKey: .op, or: "")
    }
}

public struct SeccompAction: OCIString {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }

    public static let kill: Self = "SCMP_ACT_KILL"
    public static let killProcess: Self = "SCMP_ACT_KILL_PROCESS"
    public static let killThread: Self = "SCMP_ACT_KILL_THREAD"
    public static let trap: Self = "SCMP_ACT_TRAP"
    public static let errno: Self = "SCMP_ACT_ERRNO"
    public static let trace: Self = "SCMP_ACT_TRACE"
    public static let allow: Self = "SCMP_ACT_ALLOW"
    public static let log: Self = "SCMP_ACT_LOG"
    public static let notify: Self = "SCMP_ACT_NOTIFY"
    public static let known: [Self] = [kill, killProcess, killThread, trap, errno, trace, allow, log, notify]
}

public struct SeccompOperator: OCIString {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }

    public static let notEqual: Self = "SCMP_CMP_NE"
    public static let lessThan: Self = "SCMP_CMP_LT"
    public static let lessOrEqual: Self = "SCMP_CMP_LE"
    public static let equal: Self = "SCMP_CMP_EQ"
    public static let greaterOrEqual: Self = "SCMP_CMP_GE"
    public static let greaterThan: Self = "SCMP_CMP_GT"
    public static let maskedEqual: Self = "SCMP_CMP_MASKED_EQ"
    public static let known: [Self] = [notEqual, lessThan, lessOrEqual, equal, greaterOrEqual, greaterThan, maskedEqual]
}

public struct SeccompArch: OCIString {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }

    public static let x86: Self = "SCMP_ARCH_X86"
    public static let x86_64: Self = "SCMP_ARCH_X86_64"
    public static let x32: Self = "SCMP_ARCH_X32"
    public static let arm: Self = "SCMP_ARCH_ARM"
    public static let aarch64: Self = "SCMP_ARCH_AARCH64"
    public static let mips: Self = "SCMP_ARCH_MIPS"
    public static let mips64: Self = "SCMP_ARCH_MIPS64"
    public static let mips64n32: Self = "SCMP_ARCH_MIPS64N32"
    public static let mipsel: Self = "SCMP_ARCH_MIPSEL"
    public static let mipsel64: Self = "SCMP_ARCH_MIPSEL64"
    public static let mipsel64n32: Self = "SCMP_ARCH_MIPSEL64N32"
    public static let ppc: Self = "SCMP_ARCH_PPC"
    public static let ppc64: Self = "SCMP_ARCH_PPC64"
    public static let ppc64le: Self = "SCMP_ARCH_PPC64LE"
    public static let s390: Self = "SCMP_ARCH_S390"
    public static let s390x: Self = "SCMP_ARCH_S390X"
    public static let parisc: Self = "SCMP_ARCH_PARISC"
    public static let parisc64: Self = "SCMP_ARCH_PARISC64"
    public static let riscv64: Self = "SCMP_ARCH_RISCV64"
    public static let loongarch64: Self = "SCMP_ARCH_LOONGARCH64"
    public static let m68k: Self = "SCMP_ARCH_M68K"
    public static let sh: Self = "SCMP_ARCH_SH"
    public static let sheb: Self = "SCMP_ARCH_SHEB"
    public static let known: [Self] = [
        x86, x86_64, x32, arm, aarch64, mips, mips64, mips64n32, mipsel, mipsel64, mipsel64n32,
        ppc, ppc64, ppc64le, s390, s390x, parisc, parisc64, riscv64, loongarch64, m68k, sh, sheb,
    ]
}

public struct SeccompFlag: OCIString {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }

    public static let tsync: Self = "SECCOMP_FILTER_FLAG_TSYNC"
    public static let log: Self = "SECCOMP_FILTER_FLAG_LOG"
    public static let specAllow: Self = "SECCOMP_FILTER_FLAG_SPEC_ALLOW"
    public static let waitKillableRecv: Self = "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"
    public static let known: [Self] = [tsync, log, specAllow, waitKillableRecv]
}
