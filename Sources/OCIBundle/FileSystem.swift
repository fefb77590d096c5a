#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The little file-system access loading needs, with errno kept for Go-style messages.
enum FileSystem {
    /// The whole file; `.system("open"|"read", path, errno)` on failure.
    static func readFile(_ path: String) throws(BundleError) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .system(operation: "open", path: path, errno: errno) }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw .system(operation: "read", path: path, errno: errno)
            }
            if count == 0 { return bytes }
            bytes.append(contentsOf: chunk[0..<count])
        }
    }

    /// Whether `path` is a directory (following symlinks); `.system("stat", ...)` if it does not exist.
    static func isDirectory(_ path: String) throws(BundleError) -> Bool {
        var info = stat()
        guard stat(path, &info) == 0 else { throw .system(operation: "stat", path: path, errno: errno) }
        return info.st_mode & S_IFMT == S_IFDIR
    }

    static func currentDirectory() -> String {
        guard let cwd = getcwd(nil, 0) else { return "/" }
        defer { free(cwd) }
        return String(cString: cwd)
    }
}

/// Lexical path operations (Go's `filepath.Clean` and `Join`), no file-system access.
public enum Path {
    /// Removes duplicate slashes, `.` and resolvable `..`; "" becomes ".", "/.." becomes "/".
    public static func clean(_ path: String) -> String {
        let absolute = path.hasPrefix("/")
        var parts: [Substring] = []
        for part in path.split(separator: "/", omittingEmptySubsequences: true) {
            switch part {
            case ".":
                continue
            case "..":
                if let last = parts.last, last != ".." {
                    parts.removeLast()
                } else if !absolute {
                    parts.append(part)
                }
            default:
                parts.append(part)
            }
        }
        let joined = parts.joined(separator: "/")
        if absolute { return "/" + joined }
        return joined.isEmpty ? "." : joined
    }

    /// `path` if absolute, else `path` under `base`; cleaned.
    public static func resolve(_ path: String, against base: String) -> String {
        path.hasPrefix("/") ? clean(path) : clean(base + "/" + path)
    }

    /// `path` made absolute against the current directory, cleaned.
    public static func absolute(_ path: String) -> String {
        resolve(path, against: FileSystem.currentDirectory())
    }
}
