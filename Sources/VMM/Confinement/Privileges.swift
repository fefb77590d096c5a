import CSeccomp
#if canImport(Glibc)
import Glibc
#endif

/// The VMM's privileges once the guest runs: no_new_privs, and of all capabilities
/// only the few the virtio-fs server needs to act for the guest's root on the
/// container's files. Capabilities are per thread: this runs on the main thread
/// before the VMM starts any other, so every thread inherits the result.
public enum Privileges {
    /// What the file server needs, and why:
    public static let fileServerCapabilities: [(cap: cap_value_t, name: String, why: String)] = [
        (cap_value_t(CAP_CHOWN), "CAP_CHOWN", "chown/fchownat for the guest's root (SETATTR uid/gid, CREATE as another owner)"),
        (cap_value_t(CAP_DAC_OVERRIDE), "CAP_DAC_OVERRIDE", "open/create in directories and files the guest's root may use but host modes forbid"),
        (cap_value_t(CAP_FOWNER), "CAP_FOWNER", "chmod, utimensat and xattrs on files owned by other uids"),
        (cap_value_t(CAP_FSETID), "CAP_FSETID", "keep setuid/setgid bits when the guest's root writes or chowns"),
        (cap_value_t(CAP_MKNOD), "CAP_MKNOD", "MKNOD of device nodes in the container's rootfs"),
    ]

    /// no_new_privs, then the bounding set and the effective/permitted sets reduced
    /// to `keep`; inheritable and ambient emptied.
    public static func restrict(keeping keep: [cap_value_t] = fileServerCapabilities.map(\.cap)) throws(SystemCallError) {
        guard cseccomp_set_no_new_privs() == 0 else {
            throw SystemCallError(call: "prctl", argument: "PR_SET_NO_NEW_PRIVS", errno: .init(rawValue: errno))
        }
        let last = lastCapability()
        for cap in 0...last where !keep.contains(cap_value_t(cap)) {
            guard cseccomp_capbset_drop(cap) == 0 || errno == EINVAL else {
                throw SystemCallError(call: "prctl", argument: "PR_CAPBSET_DROP \(cap)", errno: .init(rawValue: errno))
            }
        }
        guard let caps = cap_init() else {
            throw SystemCallError(call: "cap_init", argument: "", errno: .init(rawValue: errno))
        }
        defer { cap_free(UnsafeMutableRawPointer(caps)) }
        var list = keep
        let count = Int32(list.count)
        guard cap_set_flag(caps, CAP_EFFECTIVE, count, &list, CAP_SET) == 0,
              cap_set_flag(caps, CAP_PERMITTED, count, &list, CAP_SET) == 0,
              cap_set_proc(caps) == 0 else {
            throw SystemCallError(call: "cap_set_proc", argument: keep.map(String.init).joined(separator: ","), errno: .init(rawValue: errno))
        }
        guard cseccomp_clear_ambient() == 0 || errno == EINVAL else {
            throw SystemCallError(call: "prctl", argument: "PR_CAP_AMBIENT_CLEAR_ALL", errno: .init(rawValue: errno))
        }
    }

    /// The host kernel's highest capability number.
    static func lastCapability() -> Int32 {
        guard let bytes = try? readWholeFile("/proc/sys/kernel/cap_last_cap", what: "cap_last_cap") else { return 40 }
        return Int32(String(decoding: bytes.prefix { $0 >= 0x30 && $0 <= 0x39 }, as: UTF8.self)) ?? 40
    }
}
