import Testing
import Foundation
import Synchronization
import AgentProtocol
@testable import VMM

/// The agent channel end to end: the guest agent connects over the VMM's virtio-vsock
/// device to a Unix socket on the host and the agent takes the VMM's hello (same protocol version).
extension VMBootTests {
    @Suite struct AgentChannelGuestTests {
        /// A one-connection Unix-socket server on its own thread.
        final class HostEnd: Sendable {
            /// The agent connected and our hello went out.
            let greeted = Mutex(false)
            let failure = Mutex<String?>(nil)
            let listener: Int32

            init(path: String) throws {
                listener = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
                var address = sockaddr_un()
                address.sun_family = sa_family_t(AF_UNIX)
                withUnsafeMutableBytes(of: &address.sun_path) { raw in
                    for (i, byte) in path.utf8.prefix(raw.count - 1).enumerated() { raw[i] = byte }
                }
                let bound = withUnsafePointer(to: &address) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
                }
                guard listener >= 0, bound == 0, listen(listener, 1) == 0 else {
                    throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO)
                }
            }

            /// Accepts one connection and says hello first, as the VMM does (the agent's
            /// own hello comes back with its answer to `create`, which this end never
            /// sends); then closes, which lets the agent end the guest.
            func serve() {
                Thread.detachNewThread { [self] in
                    defer { close(listener) }
                    let connection = accept(listener, nil, nil)
                    guard connection >= 0 else { failure.withLock { $0 = "accept: \(errno)" }; return }
                    defer { close(connection) }
                    do {
                        let hello = try Frame.control(.hello()).encoded()
                        let written = hello.withUnsafeBytes { write(connection, $0.baseAddress, $0.count) }
                        guard written == hello.count else { failure.withLock { $0 = "write hello: \(errno)" }; return }
                        greeted.withLock { $0 = true }
                        // Anything the agent sends before we close is a protocol error.
                        var pollfd = pollfd(fd: connection, events: Int16(POLLIN), revents: 0)
                        if poll(&pollfd, 1, 200) > 0 {
                            var buffer = [UInt8](repeating: 0, count: 4096)
                            let n = buffer.withUnsafeMutableBytes { read(connection, $0.baseAddress, $0.count) }
                            if n > 0 { failure.withLock { $0 = "the agent sent \(n) bytes before create" } }
                        }
                    } catch {
                        failure.withLock { $0 = "\(error)" }
                    }
                }
            }
        }

        @Test func theAgentGreetsTheVMMOverVsock() throws {
            try requireKVM()
            let root = try #require(GuestArtifacts.guestRoot(), "no guest root: run scripts/build.sh")
            let directory = "/tmp/sm-runc-vsock-\(getpid())"
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let host = try HostEnd(path: "\(directory)/agent.sock_\(AgentProtocol.vsockPort)")
            host.serve()

            let console = GuestBootTests.Console()
            var configuration = MachineConfiguration(kernelPath: try GuestArtifacts.kernel())
            configuration.shares = [.init(tag: "sm-guest", hostPath: root, readOnly: true)]
            configuration.rootShare = ("sm-guest", "/sm-init")
            configuration.vsockSocketPath = "\(directory)/agent.sock"
            configuration.extraKernelParameters = AgentProtocol.kernelParameters
            configuration.deadlineSeconds = GuestBootTests.deadline
            configuration.consoleOutput = { bytes in console.bytes.withLock { $0 += bytes } }
            let report = try Machine(configuration).run()

            #expect(report.exit == .reset, "console:\n\(console.text)")
            #expect(host.failure.withLock { $0 } == nil)
            #expect(host.greeted.withLock { $0 }, "console:\n\(console.text)")
            #expect(console.text.contains("sm-init: agent channel up (protocol v1)"), "console:\n\(console.text)")
        }
    }
}
