import Foundation
import CSeccomp
import OCIBundle

/// The container's own `linux.seccomp` profile, compiled to a classic BPF program on
/// the host with libseccomp (the same translation runc makes) and loaded by the agent
/// in the guest right before the process's exec. The guest and host are both
/// x86_64, so the program is valid there.
package enum ContainerSeccomp {
    /// BPF_MAXINSNS instructions of 8 bytes: the kernel's limit for one program.
    package static let maximumBytes = 4096 * 8

    package static func compile(_ profile: OCIBundle.Seccomp) throws -> [UInt8] {
        // runc hands a listener the container's notify fd; the filter runs in the guest
        // kernel, whose fd cannot reach a host process: refused here, before a guest
        // boots, rather than leaving the listener waiting.
        if let path = profile.listenerPath, !path.isEmpty {
            throw RuntimeError("seccomp: listenerPath \(path): a seccomp notify listener cannot receive notifications from a microVM's guest kernel")
        }
        guard let filter = seccomp_init(try action(profile.defaultAction, errno: profile.defaultErrnoRet)) else {
            throw RuntimeError("seccomp: default action \(profile.defaultAction.rawValue) is not supported")
        }
        defer { seccomp_release(filter) }
        for arch in profile.architectures ?? [] {
            let token: UInt32
            switch arch.rawValue {
            case "SCMP_ARCH_X86_64": token = CSECCOMP_ARCH_X86_64
            case "SCMP_ARCH_X86": token = CSECCOMP_ARCH_X86
            case "SCMP_ARCH_X32": token = CSECCOMP_ARCH_X32
            default: continue                                   // other architectures cannot run in this guest
            }
            let rc = seccomp_arch_add(filter, token)
            guard rc == 0 || rc == -EEXIST else { throw RuntimeError("seccomp: add architecture \(arch.rawValue): \(String(cString: strerror(-rc)))") }
        }
        for entry in profile.syscalls ?? [] {
            let ruleAction = try action(entry.action, errno: entry.errnoRet ?? profile.defaultErrnoRet)
            for name in entry.names {
                let number = seccomp_syscall_resolve_name(name)
                guard number != __NR_SCMP_ERROR else { continue }     // unknown here: ignored, as runc does
                try add(filter, ruleAction, number, name: name, arguments: entry.args ?? [])
            }
        }
        return try export(filter)
    }

    /// runc's rule: comparisons on distinct arguments form one rule (all must hold);
    /// several comparisons of the same argument each form their own rule.
    package static func add(_ filter: scmp_filter_ctx, _ action: UInt32, _ number: Int32, name: String, arguments: [SeccompArg]) throws {
        let comparisons = try arguments.map(comparison)
        let distinct = Set(arguments.map(\.index)).count == arguments.count
        let groups = distinct ? [comparisons] : comparisons.map { [$0] }
        for group in groups {
            let rc = group.withUnsafeBufferPointer {
                seccomp_rule_add_array(filter, action, number, UInt32(group.count), group.isEmpty ? nil : $0.baseAddress)
            }
            // -EACCES/-EEXIST: the rule equals the default action or repeats one; fine.
            guard rc == 0 || rc == -EACCES || rc == -EEXIST else {
                throw RuntimeError("seccomp: rule for \(name): \(String(cString: strerror(-rc)))")
            }
        }
    }

    package static func comparison(_ argument: SeccompArg) throws -> scmp_arg_cmp {
        let op: scmp_compare
        switch argument.op {
        case .notEqual: op = SCMP_CMP_NE
        case .lessThan: op = SCMP_CMP_LT
        case .lessOrEqual: op = SCMP_CMP_LE
        case .equal: op = SCMP_CMP_EQ
        case .greaterOrEqual: op = SCMP_CMP_GE
        case .greaterThan: op = SCMP_CMP_GT
        case .maskedEqual: op = SCMP_CMP_MASKED_EQ
        default: throw RuntimeError("seccomp: unknown operator \(argument.op.rawValue)")
        }
        return cseccomp_arg(argument.index, Int32(op.rawValue), argument.value, argument.valueTwo ?? 0)
    }

    package static func action(_ action: SeccompAction, errno value: UInt32?) throws -> UInt32 {
        switch action {
        case .allow: return CSECCOMP_ACT_ALLOW
        case .errno: return cseccomp_act_errno(UInt16(truncatingIfNeeded: value ?? UInt32(EPERM)))
        case .kill, .killThread: return CSECCOMP_ACT_KILL_THREAD
        case .killProcess: return CSECCOMP_ACT_KILL_PROCESS
        case .trap: return CSECCOMP_ACT_TRAP
        case .log: return CSECCOMP_ACT_LOG
        case .trace: return cseccomp_act_trace(UInt16(truncatingIfNeeded: value ?? 0))
        default: throw RuntimeError("seccomp: action \(action.rawValue) is not supported (no seccomp notify across a VM)")
        }
    }

    /// The program as bytes (struct sock_filter array), through a pipe.
    package static func export(_ filter: scmp_filter_ctx) throws -> [UInt8] {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { throw RuntimeError.system("pipe", "seccomp export") }
        defer { close(fds[0]) }
        let rc = seccomp_export_bpf(filter, fds[1])
        close(fds[1])
        guard rc == 0 else { throw RuntimeError("seccomp: export: \(String(cString: strerror(-rc)))") }
        var program: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 8192)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fds[0], $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { break }
            program += buffer[0..<n]
            guard program.count <= maximumBytes else { throw RuntimeError("seccomp: the profile compiles to more than 4096 instructions") }
        }
        guard !program.isEmpty, program.count % 8 == 0 else { throw RuntimeError("seccomp: export gave \(program.count) bytes") }
        return program
    }
}
