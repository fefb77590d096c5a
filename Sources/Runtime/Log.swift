import Foundation
import OCIBundle

/// Where diagnostics and errors go, the way runc does it: with `--log`, one line per
/// entry in that file (`--log-format json`: `{"level","msg","time"}`, the line
/// containerd and podman parse; text: `time="…" level=… msg="…"`), and errors are
/// also printed plainly on stderr; without `--log`, entries go to stderr.
package struct Reporter: Sendable {
    package enum Format: String, Sendable { case text, json }

    package let logPath: String?
    package let format: Format
    package let debugEnabled: Bool
    /// Whether entries may go to stderr when there is no log file (not in the VMM
    /// process, whose stderr is the container's).
    package let stderrAllowed: Bool

    package init(logPath: String?, format: Format, debug: Bool, stderrAllowed: Bool = true) {
        self.logPath = logPath
        self.format = format
        self.debugEnabled = debug
        self.stderrAllowed = stderrAllowed
    }

    /// The flags as they appear on the command line, read before parsing so that even
    /// an argument error is reported in the engine's log format.
    package static func fromArguments(_ arguments: [String], stderrAllowed: Bool = true) -> Reporter {
        var log: String?, format = Format.text, debug = false
        var i = 0
        func value(_ name: String) -> String? {
            let argument = arguments[i]
            if argument.hasPrefix(name + "=") { return String(argument.dropFirst(name.count + 1)) }
            if argument == name, i + 1 < arguments.count { i += 1; return arguments[i] }
            return nil
        }
        while i < arguments.count {
            if let v = value("--log") { log = v.isEmpty ? nil : v }
            else if let v = value("--log-format") { format = Format(rawValue: v) ?? .text }
            else if arguments[i] == "--debug" { debug = true }
            i += 1
        }
        return Reporter(logPath: log, format: format, debug: debug, stderrAllowed: stderrAllowed)
    }

    package func debug(_ message: String) {
        guard debugEnabled else { return }
        emit(level: "debug", message)
    }

    package func warning(_ message: String) { emit(level: "warning", message) }

    /// An error: to the log, and always as plain text on stderr when there is a log
    /// file (what runc prints), so both log readers and stderr readers see it.
    package func error(_ message: String) {
        emit(level: "error", message)
        if logPath != nil, stderrAllowed { writeStderr(message + "\n") }
    }

    private func emit(level: String, _ message: String) {
        let line = render(level: level, message)
        if let logPath {
            let fd = open(logPath, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
            guard fd >= 0 else { if stderrAllowed { writeStderr(line) }; return }
            defer { close(fd) }
            _ = Array(line.utf8).withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        } else if stderrAllowed {
            writeStderr(line)
        }
    }

    package func render(level: String, _ message: String) -> String {
        let time = Self.timestamp(fractional: false)
        switch format {
        case .json:
            struct Entry: Encodable { let level: String; let msg: String; let time: String }
            let bytes = (try? OCIJSON.encodeCompact(Entry(level: level, msg: message, time: time))) ?? []
            return String(decoding: bytes, as: UTF8.self) + "\n"
        case .text:
            let escaped = message.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
                .replacingOccurrences(of: "\n", with: "\\n")
            return "time=\"\(time)\" level=\(level) msg=\"\(escaped)\"\n"
        }
    }

    /// RFC 3339 in UTC; log lines carry whole seconds as runc's do.
    package static func timestamp(fractional: Bool = true) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = fractional ? [.withInternetDateTime, .withFractionalSeconds] : [.withInternetDateTime]
        return formatter.string(from: Date())
    }

    private func writeStderr(_ text: String) {
        _ = Array(text.utf8).withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
    }
}

/// An error the CLI reports (log + stderr, see `Reporter`) and exits 1 for. The text
/// follows runc's wording where engines match on it.
package struct RuntimeError: Error, CustomStringConvertible {
    package let description: String
    /// The exit status: 1, or 255 where runc uses it (an exec that failed to start).
    package let exitCode: Int32
    package init(_ description: String, exitCode: Int32 = 1) {
        self.description = description
        self.exitCode = exitCode
    }

    package static func notFound(_ id: String) -> RuntimeError { RuntimeError("container does not exist") }
    package static func system(_ call: String, _ argument: String, errno code: Int32 = errno) -> RuntimeError {
        RuntimeError("\(call) \(argument): \(String(cString: strerror(code)).lowercased())")
    }
}
