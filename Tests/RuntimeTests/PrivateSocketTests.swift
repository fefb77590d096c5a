import Testing
import Foundation
import AgentProtocol
@testable import VMM
@testable import Runtime

extension RuntimeTests {
    /// The sockets in a container's state directory (the VMM's vsock socket
    /// `agent.sock`, the agent's port `agent.sock_1024`, `control.sock`): whoever can
    /// connect speaks for the guest agent or commands the VMM, so no other user may,
    /// whatever the umask of whoever ran sm-runc. Serialized: the umask is the
    /// process's (other suites' files are made more permissive meanwhile, never less).
    @Suite(.serialized) struct PrivateSocketTests {
        static func withUmask<R>(_ mask: mode_t, _ body: () throws -> R) rethrows -> R {
            let saved = umask(mask)
            defer { umask(saved) }
            return try body()
        }

        /// Only the owner (us) may connect: the socket is ours and gives nothing to
        /// group or others.
        static func expectPrivate(_ path: String, sourceLocation: SourceLocation = #_sourceLocation) {
            guard let st = lstatus(path) else {
                Issue.record("lstat \(path): \(String(cString: strerror(errno)))", sourceLocation: sourceLocation)
                return
            }
            #expect(st.st_mode & S_IFMT == S_IFSOCK, "\(path) is a socket", sourceLocation: sourceLocation)
            #expect(st.st_uid == geteuid(), sourceLocation: sourceLocation)
            #expect(st.st_mode & 0o777 == 0o600, "\(path) has mode 0\(String(st.st_mode & 0o777, radix: 8))",
                    sourceLocation: sourceLocation)
        }

        @Test func theVMMVsockSocketIsPrivateUnderUmask000() throws {
            let directory = try TemporaryDirectory()
            let path = directory.path + "/agent.sock"
            let vsock = try Self.withUmask(0) { try VirtioVsock(guestCID: 3, socketPath: path, log: { _ in }) }
            Self.expectPrivate(path)
            withExtendedLifetime(vsock) {}
            // A stale socket of a VMM that died is replaced, privately too.
            let again = try Self.withUmask(0) { try VirtioVsock(guestCID: 3, socketPath: path, log: { _ in }) }
            Self.expectPrivate(path)
            withExtendedLifetime(again) {}
            #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path) == ["agent.sock"])
        }

        @Test func theAgentPortSocketIsPrivateUnderUmask000() throws {
            let directory = try TemporaryDirectory()
            let path = "\(directory.path)/agent.sock_\(AgentProtocol.vsockPort)"
            let session = try Self.withUmask(0) { try AgentSession(socketPath: path, create: ControlMessage(type: .create, process: 1)) }
            Self.expectPrivate(path)
            withExtendedLifetime(session) {}
        }

        @Test func theControlSocketIsPrivateUnderUmask000() throws {
            let directory = try TemporaryDirectory()
            let path = directory.path + "/control.sock"
            let server = try Self.withUmask(0) { try ControlChannel.Server(path: path) { _ in .success("") } }
            defer { server.stop() }
            Self.expectPrivate(path)
        }

        /// A chmod after bind leaves a window in which the socket is there with the
        /// umask's mode: the socket must appear at its path only already private, by a
        /// rename, never be made or chmod-ed there (inotify sees which).
        @Test(arguments: ["control.sock", "agent.sock"])
        func aSocketAppearsAtItsPathOnlyByRename(name: String) throws {
            let directory = try TemporaryDirectory()
            let watch = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
            try #require(watch >= 0, "inotify_init1: \(String(cString: strerror(errno)))")
            defer { close(watch) }
            try #require(inotify_add_watch(watch, directory.path, UInt32(IN_CREATE | IN_ATTRIB | IN_MOVED_TO)) >= 0)
            let path = directory.path + "/" + name
            if name == "control.sock" {
                let server = try Self.withUmask(0) { try ControlChannel.Server(path: path) { _ in .success("") } }
                server.stop()
            } else {
                withExtendedLifetime(try Self.withUmask(0) { try VirtioVsock(guestCID: 3, socketPath: path, log: { _ in }) }) {}
            }
            var events: [(mask: UInt32, name: String)] = []
            var buffer = [UInt8](repeating: 0, count: 64 << 10)
            let n = buffer.withUnsafeMutableBytes { read(watch, $0.baseAddress, $0.count) }
            var at = 0
            while n > 0, at + 16 <= n {
                let mask = buffer[at + 4..<at + 8].withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) }
                let length = Int(buffer[at + 12..<at + 16].withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) })
                let nameBytes = buffer[at + 16..<min(at + 16 + length, n)].prefix { $0 != 0 }
                events.append((mask, String(decoding: nameBytes, as: UTF8.self)))
                at += 16 + length
            }
            let atPath = events.filter { $0.name == name }
            #expect(!atPath.isEmpty, "no event for \(name) at all")
            #expect(atPath.allSatisfy { $0.mask & UInt32(IN_MOVED_TO) != 0 },
                    "\(name) was made or changed in place: \(atPath.map { String($0.mask, radix: 16) })")
        }
    }
}
