#if canImport(Glibc)
import Glibc
#endif
import Foundation
import CPosix

/// Runs a command with stdin from a string (or /dev/null) and stdout and stderr in
/// files, and waits for it with waitpid: podman leaves conmon behind holding any pipe it
/// was given, so nothing here may wait for a pipe to close. The child starts with the
/// default disposition and an empty mask for the signals a runtime forwards, whatever
/// its parent set (a test runner or a benchmark that ignores SIGINT).
public struct FileOutputCommand: Sendable {
    public struct Result: Sendable, Equatable {
        /// The exit status, or 128 + the signal that ended it.
        public var status: Int32
        public var stdout: String
        public var stderr: String

        public init(status: Int32, stdout: String, stderr: String) {
            self.status = status
            self.stdout = stdout
            self.stderr = stderr
        }
    }

    /// Where the output files are made (removed once read).
    public let scratch: String
    /// `NAME=value` strings; the whole environment of the command.
    public let environment: [String]

    public init(scratch: String, environment: [String]) {
        self.scratch = scratch
        self.environment = environment
    }

    /// Runs `argv` (argv[0] an absolute path).
    public func run(_ argv: [String], stdin: String? = nil) throws -> Result {
        precondition(!argv.isEmpty, "FileOutputCommand.run: no command")
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        let tag = "\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let files = ["in", "out", "err"].map { "\(scratch)/call-\(tag).\($0)" }
        defer { files.forEach { unlink($0) } }
        if let stdin { FileManager.default.createFile(atPath: files[0], contents: Data(stdin.utf8)) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, stdin == nil ? "/dev/null" : files[0], O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, files[1], O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_addopen(&actions, 2, files[2], O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        var attributes = Self.childAttributes()
        defer { posix_spawnattr_destroy(&attributes) }
        let cArguments = argv.map { strdup($0) } + [nil]
        let cEnvironment = environment.map { strdup($0) } + [nil]
        defer { cArguments.forEach { free($0) }; cEnvironment.forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, argv[0], &actions, &attributes, cArguments, cEnvironment)
        guard rc == 0 else { throw POSIXError(POSIXErrorCode(rawValue: rc) ?? .EIO) }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        return Result(status: status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f),
                      stdout: (try? String(contentsOfFile: files[1], encoding: .utf8)) ?? "",
                      stderr: (try? String(contentsOfFile: files[2], encoding: .utf8)) ?? "")
    }

    /// posix_spawn attributes with the child's signals at their defaults and unblocked
    /// (`cposix_spawn_default_signals`, as the runtime spawns its VMM). Call
    /// `posix_spawnattr_destroy` after the spawn.
    public static func childAttributes() -> posix_spawnattr_t {
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        cposix_spawn_default_signals(&attributes)
        return attributes
    }
}
