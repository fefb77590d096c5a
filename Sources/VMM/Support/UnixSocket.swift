#if canImport(Glibc)
import Glibc
#endif
import SystemPackage

/// AF_UNIX listening sockets that only their owner may connect to, whatever the
/// caller's umask: the VMM's vsock socket and its per-port sockets, the control
/// socket. Whoever may connect to one of these can speak for the guest agent or
/// command the VMM.
///
/// bind(2) makes the socket file with the mode the process umask leaves (a
/// permissive umask: srwxrwxrwx), and a chmod after bind leaves a window in which
/// another user may connect. So the socket is bound in a fresh 0700 directory next
/// to `path` (mkdtemp), where nobody else can reach it, made 0600 there, set
/// listening, and only then renamed to `path`: it appears there private and ready.
/// No process-wide state (the umask) is touched, so other threads are unaffected.
public enum UnixSocket {
    /// `sockaddr_un.sun_path` holds 107 bytes and a NUL.
    public static let maxPathBytes = MemoryLayout.size(ofValue: sockaddr_un().sun_path) - 1

    /// The mode every socket made here gets.
    public static let mode: mode_t = 0o600

    /// The private directory's name (mkdtemp's template) and the socket's name in it.
    static let bindDirectoryTemplate = ".XXXXXX"
    public static let boundName = "s"

    /// Whether `name` (an entry next to a socket) is one of our bind directories, which
    /// a process killed between mkdtemp and rename leaves behind.
    public static func isBindDirectory(_ name: String) -> Bool {
        name.utf8.count == bindDirectoryTemplate.utf8.count && name.hasPrefix(".") && name != ".." && name != "."
    }

    /// Lends `path` as a `sockaddr_un`; nil when it does not fit. The pointer must not escape.
    static func withAddress<R>(_ path: String, _ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R? {
        let bytes = Array(path.utf8)
        guard !bytes.isEmpty, bytes.count <= maxPathBytes, !bytes.contains(0) else { return nil }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
        }
        // The sockaddr_un lives on this frame for the duration of `body` only.
        return withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                body($0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
    }

    /// Binds the unbound AF_UNIX socket `fd` at `path` with mode 0600 and makes it
    /// listen; a file already at `path` is replaced (rename). The errors name the call
    /// and `path`.
    public static func listen(_ fd: Int32, at path: String, backlog: Int32) throws(SystemCallError) {
        // Clients connect by `path`, so it must fit a sockaddr_un itself.
        guard path.utf8.count <= maxPathBytes else {
            throw SystemCallError(call: "bind", argument: "\(path) (socket path too long: \(path.utf8.count) bytes, at most \(maxPathBytes))",
                                  errno: .fileNameTooLong)
        }
        let slash = path.lastIndex(of: "/")
        let directory = slash.map { $0 == path.startIndex ? "/" : String(path[..<$0]) } ?? "."
        var template = Array(((directory == "/" ? "" : directory) + "/" + bindDirectoryTemplate).utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw SystemCallError(call: "mkdtemp", argument: "next to \(path)", errno: Errno(rawValue: errno))
        }
        let privateDirectory = String(cString: made)
        let bound = privateDirectory + "/" + boundName
        defer {
            unlink(bound)               // still there only when a step failed
            rmdir(privateDirectory)
        }
        // Bound through the directory's descriptor (/proc/self/fd/N/s): the private
        // directory's own path is longer than `path` and may not fit a sockaddr_un.
        let directoryFD = open(privateDirectory, Linux.O_PATH | O_DIRECTORY | O_CLOEXEC)
        guard directoryFD >= 0 else { throw SystemCallError(call: "open", argument: privateDirectory, errno: Errno(rawValue: errno)) }
        defer { close(directoryFD) }
        let result = withAddress("/proc/self/fd/\(directoryFD)/" + boundName) { address, length in Glibc.bind(fd, address, length) }
        guard let result else { throw SystemCallError(call: "bind", argument: path, errno: .fileNameTooLong) }
        if result != 0 { throw SystemCallError(call: "bind", argument: "\(path) (as \(bound))", errno: Errno(rawValue: errno)) }
        try check("chmod", bound) { chmod(bound, mode) }
        try check("listen", path) { Glibc.listen(fd, backlog) }
        try check("rename", "\(bound) to \(path)") { rename(bound, path) }
    }
}
