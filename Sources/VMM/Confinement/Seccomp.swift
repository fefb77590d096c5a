import CSeccomp
#if canImport(Glibc)
import Glibc
#endif

/// One allowed system call, with the reason it is on the list and, where the
/// arguments can be pinned down, the values allowed for one argument (ioctl's
/// request number, fcntl's command...).
public struct SyscallRule: Sendable {
    public let name: String
    public let why: String
    /// (argument index, allowed values); nil allows any arguments.
    public let argument: (index: UInt32, values: [UInt64])?
    /// Not allowed but failed with this errno (the caller falls back), instead of
    /// ending the process: clone3 gets ENOSYS so glibc uses clone, whose flags a
    /// filter can see.
    public let errno: Int32?

    public init(_ name: String, _ why: String, argument: (index: UInt32, values: [UInt64])? = nil, failsWith errno: Int32? = nil) {
        self.name = name
        self.why = why
        self.argument = argument
        self.errno = errno
    }
}

/// seccomp filters built with libseccomp. The default action ends the whole VMM
/// process (SECCOMP_RET_KILL_PROCESS: the engine waiting on it sees it die by
/// SIGSYS), never one thread.
public enum SeccompFilter {
    /// Installs `rules` on the calling thread, or with `allThreads` on every thread of
    /// the process (TSYNC). Filters stack: a thread's effective list is the
    /// intersection of all the filters it carries.
    public static func install(_ rules: [SyscallRule], allThreads: Bool = false) throws(SystemCallError) {
        guard let filter = seccomp_init(CSECCOMP_ACT_KILL_PROCESS) else {
            throw SystemCallError(call: "seccomp_init", argument: "KILL_PROCESS", errno: .init(rawValue: ENOMEM))
        }
        defer { seccomp_release(filter) }
        for rule in rules {
            let action = rule.errno.map { cseccomp_act_errno(UInt16($0)) } ?? CSECCOMP_ACT_ALLOW
            let number = seccomp_syscall_resolve_name(rule.name)
            guard number >= 0 else {
                throw SystemCallError(call: "seccomp_syscall_resolve_name", argument: rule.name, errno: .init(rawValue: EINVAL))
            }
            if let argument = rule.argument {
                for value in argument.values {
                    var comparison = [cseccomp_arg_equals(argument.index, value)]
                    let rc = seccomp_rule_add_array(filter, action, number, 1, &comparison)
                    guard rc == 0 else {
                        throw SystemCallError(call: "seccomp_rule_add", argument: "\(rule.name) arg\(argument.index)=\(value)", errno: .init(rawValue: -rc))
                    }
                }
            } else {
                let rc = seccomp_rule_add_array(filter, action, number, 0, nil)
                guard rc == 0 else {
                    throw SystemCallError(call: "seccomp_rule_add", argument: rule.name, errno: .init(rawValue: -rc))
                }
            }
        }
        if allThreads {
            let rc = cseccomp_set_tsync(filter)
            guard rc == 0 else { throw SystemCallError(call: "seccomp_attr_set", argument: "TSYNC", errno: .init(rawValue: -rc)) }
        }
        let rc = seccomp_load(filter)
        guard rc == 0 else { throw SystemCallError(call: "seccomp_load", argument: "\(rules.count) rules", errno: .init(rawValue: -rc)) }
    }

    /// Whether the filters should be skipped (diagnosis only): the environment
    /// variable SM_RUNC_VMM_SECCOMP=off.
    public static var disabledByEnvironment: Bool {
        getenv("SM_RUNC_VMM_SECCOMP").map { String(cString: $0) == "off" } ?? false
    }
}
