import Testing
import Foundation
#if canImport(Glibc)
import Glibc
#endif
@testable import VMM

/// `Jail` on this process (in a child: an exit test), without a VM: what is left of
/// the filesystem after the pivot. Needs root: FAILS without it.
@Suite struct JailTests {
    /// A fixed directory (the exit test's child finds it without captures).
    static let top = "/tmp/sm-runc-jail-unit-test"

    @Test func aJailedProcessSeesOnlyItsEntriesAndTheirModes() async throws {
        try #require(geteuid() == 0, "the jail needs root (a mount namespace)")
        try? FileManager.default.removeItem(atPath: Self.top)
        for directory in ["share/sub", "state"] {
            try FileManager.default.createDirectory(atPath: Self.top + "/" + directory, withIntermediateDirectories: true)
        }
        try Data("served\n".utf8).write(to: URL(fileURLWithPath: Self.top + "/share/sub/file"))
        try Data("log\n".utf8).write(to: URL(fileURLWithPath: Self.top + "/log"))
        defer { try? FileManager.default.removeItem(atPath: Self.top) }
        defer { if let error = try? String(contentsOfFile: Self.top + "/error", encoding: .utf8) { Issue.record("jail: \(error)") } }
        await #expect(processExitsWith: .success) {
            // The jail is for a process with one thread (the VMM enters it before its
            // first): the exit test's child runs the test library's, so a fork does it.
            let child = fork()
            guard child == 0 else {
                var status: Int32 = 0
                while waitpid(child, &status, 0) < 0 && errno == EINTR {}
                exit(status & 0x7f == 0 ? (status >> 8) & 0xff : 100)
            }
            let top = JailTests.top
            let jail = Jail(entries: [Jail.Entry(path: top + "/share", recursive: true, readOnly: true),
                                      Jail.Entry(path: top + "/state", recursive: false, readOnly: false),
                                      Jail.Entry(path: top + "/log", recursive: false, readOnly: false)],
                            staging: top + "/state/jail", workingDirectory: top + "/cwd")
            do { try jail.enter() } catch {
                let fd = open(top + "/error", O_WRONLY | O_CREAT, 0o600)
                _ = "\(error)".withCString { write(fd, $0, strlen($0)) }
                _exit(2)
            }
            // The host's files are gone; the entries are where they were on the host.
            guard access("/etc/passwd", F_OK) != 0, access("/usr", F_OK) != 0, access("/proc/1", F_OK) != 0 else { _exit(3) }
            let fd = open(top + "/share/sub/file", O_RDONLY)
            guard fd >= 0 else { _exit(4) }
            // The file server's way in: /proc/self/fd/N (our own fds only).
            guard access("/proc/self/fd/\(fd)", R_OK) == 0 else { _exit(5) }
            // A read-only entry; a writable state directory and log; a read-only root.
            guard open(top + "/share/new", O_WRONLY | O_CREAT, 0o600) == -1, errno == EROFS else { _exit(6) }
            guard open(top + "/state/record", O_WRONLY | O_CREAT, 0o600) >= 0 else { _exit(7) }
            guard open(top + "/log", O_WRONLY | O_APPEND) >= 0 else { _exit(8) }
            guard mkdir("/escape", 0o700) != 0 else { _exit(9) }
            // ".." of an entry stays in the jail.
            guard access(top + "/share/../../../etc/passwd", F_OK) != 0 else { _exit(10) }
            // The working directory was kept; the staging directory is gone from the host.
            var cwd = [CChar](repeating: 0, count: 4096)
            guard getcwd(&cwd, cwd.count) != nil, String(cString: cwd) == top + "/cwd" else { _exit(11) }
            guard access(top + "/state/jail", F_OK) != 0 else { _exit(12) }
            _exit(0)
        }
        // Nothing of the jail on the host but what its entries wrote.
        #expect(FileManager.default.fileExists(atPath: Self.top + "/state/record"))
        #expect(!FileManager.default.fileExists(atPath: Self.top + "/state/jail"))
        #expect(!FileManager.default.fileExists(atPath: Self.top + "/cwd"))
    }
}
