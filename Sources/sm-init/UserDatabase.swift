#if canImport(Glibc)
import Glibc
#endif

/// The container's /etc/passwd, read as runc's init reads it for the process's
/// user: HOME when the environment has none. (runc's user is always "uid:gid", so
/// it adds no supplementary groups from /etc/group; neither does the agent.)
struct UserDatabase {
    /// The home directory of `uid` in the container's /etc/passwd, "/" without one
    /// (runc's default).
    static func home(uid: UInt32, root: String) -> String {
        for fields in entries(root + "/etc/passwd") where fields.count >= 6 && UInt32(fields[2]) == uid {
            return fields[5].isEmpty ? "/" : fields[5]
        }
        return "/"
    }

    /// The colon-separated fields of each line of `path` (comments and blank lines
    /// skipped); nothing when it cannot be read. Files larger than 1 MiB are cut.
    static func entries(_ path: String) -> [[String]] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return [] }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while bytes.count < 1 << 20 {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { break }
            bytes += buffer[0..<n]
        }
        return String(decoding: bytes, as: UTF8.self).split(separator: "\n").compactMap { line in
            guard !line.isEmpty, !line.hasPrefix("#") else { return nil }
            return line.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        }
    }
}
