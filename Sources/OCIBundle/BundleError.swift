#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Everything that can go wrong reading a bundle, a process file or a container id.
/// `description` is the message to print, worded after runc where runc has wording.
public enum BundleError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A system call on `path` failed: `operation` is "open", "read" or "stat", `errno` its error.
    /// "open /b/config.json: no such file or directory"
    case system(operation: String, path: String, errno: Int32)
    /// The file is not JSON. "config.json: invalid JSON at line 3, column 7: invalid character 'x' ..."
    case syntax(file: String, line: Int, column: Int, reason: String)
    /// The JSON does not have the spec's shape; `at` is the JSON path ("" for the whole document).
    /// "config.json: invalid JSON at process.args[0]: expected a string, found 1"
    case decoding(file: String, at: String, reason: String)
    /// The document breaks a rule of the spec; `at` is the JSON path.
    /// "config.json: process.args: must not be empty"
    case invalid(file: String, at: String, reason: String)
    /// The container id is not `[A-Za-z0-9_+.-]+` (or is "." or ".."): "invalid container ID format".
    case invalidContainerID(String)

    public var description: String {
        switch self {
        case .system(let operation, let path, let errno):
            return "\(operation) \(path): \(Self.errorText(errno))"
        case .syntax(let file, let line, let column, let reason):
            return "\(file): invalid JSON at line \(line), column \(column): \(reason)"
        case .decoding(let file, let at, let reason):
            return at.isEmpty ? "\(file): invalid JSON: \(reason)" : "\(file): invalid JSON at \(at): \(reason)"
        case .invalid(let file, let at, let reason):
            return at.isEmpty ? "\(file): \(reason)" : "\(file): \(at): \(reason)"
        case .invalidContainerID:
            return "invalid container ID format"
        }
    }

    /// `strerror` in Go's spelling: "no such file or directory", "permission denied".
    static func errorText(_ code: Int32) -> String {
        guard let text = strerror(code) else { return "errno \(code)" }
        let message = String(cString: text)
        guard let first = message.first else { return "errno \(code)" }
        return first.lowercased() + message.dropFirst()
    }
}
