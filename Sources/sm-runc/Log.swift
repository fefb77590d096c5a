import Foundation

/// runc-style text log lines on stderr: `time="…" level=debug msg="…"`.
struct DebugLog: Sendable {
    let enabled: Bool

    func debug(_ message: String) {
        guard enabled else { return }
        let escaped = message.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
        let time = ISO8601DateFormatter().string(from: Date())
        FileHandle.standardError.write(Data("time=\"\(time)\" level=debug msg=\"\(escaped)\"\n".utf8))
    }
}

/// An error the CLI prints as `sm-runc: <message>` and exits 1 for.
struct RuntimeError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
