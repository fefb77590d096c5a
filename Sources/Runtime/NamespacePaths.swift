import Foundation
import OCIBundle
import CPosix

/// `linux.namespaces` entries given by path (`{"type": "ipc", "path": "/proc/N/ns/ipc"}`).
///
/// At create every path is checked: it must open, and NS_GET_NSTYPE must say it is a
/// namespace of the entry's type (runc's setns would refuse it otherwise; the
/// runtime-spec says a runtime MUST error). Then the VMM process, which is the pid
/// engines see in `state`, joins the ones that mean something for a process that
/// serves a microVM (`joined`): ipc, uts and network; the container's own process
/// lives in the guest, whose kernel has its own namespaces of each kind.
///
/// Not joined, and why: mount (the VMM makes its own mount namespace for its jail,
/// and resolves the bundle's host paths), pid (it would apply only to the VMM's
/// children, which it has none of), user (the VMM stays root for /dev/kvm, its
/// cgroup and the file server's chown), cgroup and time (nothing the VMM does reads
/// them). The guest does not see any of these host namespaces.
package enum NamespacePaths {
    /// CLONE_NEW* of each type (what NS_GET_NSTYPE returns).
    static let cloneFlags: [NamespaceType: Int32] = [
        .network: 0x4000_0000, .ipc: 0x0800_0000, .uts: 0x0400_0000, .mount: 0x0002_0000,
        .pid: 0x2000_0000, .user: 0x1000_0000, .cgroup: 0x0200_0000, NamespaceType(rawValue: "time"): 0x0000_0080,
    ]

    /// The types the VMM process joins.
    package static let joined: [NamespaceType] = [.ipc, .uts, .network]

    /// What a namespace type is called in errors ("network", "ipc"...), from its flag.
    static func name(ofFlag flag: Int32) -> String {
        cloneFlags.first { $0.value == flag }?.key.rawValue ?? "0x" + String(flag, radix: 16)
    }

    /// "an ipc", "a uts" (as they are read out).
    static func article(_ name: String) -> String { (name == "ipc" ? "an " : "a ") + name }

    /// Checks every entry with a path: an error for a path that does not open or is
    /// not a namespace of the entry's type.
    package static func check(_ namespaces: [Namespace]) throws {
        for namespace in namespaces {
            guard let path = namespace.path, !path.isEmpty else { continue }
            guard let expected = cloneFlags[namespace.type] else {
                throw RuntimeError("linux.namespaces: \(namespace.type.rawValue): unknown namespace type")
            }
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else {
                throw RuntimeError("linux.namespaces: \(namespace.type.rawValue) path \(path): open: \(BindShares.errorText(errno))")
            }
            defer { close(fd) }
            let type = ioctl(fd, 0xb703)                     // NS_GET_NSTYPE, _IO(0xb7, 0x3)
            guard type >= 0 else {
                throw RuntimeError("linux.namespaces: \(namespace.type.rawValue) path \(path) is not a namespace (NS_GET_NSTYPE: \(BindShares.errorText(errno)))")
            }
            guard type == expected else {
                throw RuntimeError("linux.namespaces: \(namespace.type.rawValue) path \(path) is \(article(name(ofFlag: type))) namespace, " +
                                   "not a \(namespace.type.rawValue) namespace")
            }
        }
    }

    /// In the VMM process, before it starts any thread (a thread keeps the namespaces
    /// it was made in): joins the ipc, uts and network namespaces given by path.
    /// Returns what it joined, for --debug.
    package static func join(_ namespaces: [Namespace]) throws -> [String] {
        var done: [String] = []
        for namespace in namespaces where joined.contains(namespace.type) {
            guard let path = namespace.path, !path.isEmpty, let flag = cloneFlags[namespace.type] else { continue }
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { throw RuntimeError("join the \(namespace.type.rawValue) namespace \(path): open: \(BindShares.errorText(errno))") }
            defer { close(fd) }
            guard cposix_setns(fd, flag) == 0 else {
                throw RuntimeError("join the \(namespace.type.rawValue) namespace \(path): setns: \(BindShares.errorText(errno))")
            }
            done.append("\(namespace.type.rawValue) \(path)")
        }
        return done
    }
}
