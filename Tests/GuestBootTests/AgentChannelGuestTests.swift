import Testing
import Foundation
import Synchronization
import AgentProtocol
@testable import VMM

/// The agent channel end to end: the guest agent connects over the VMM's virtio-vsock
/// device to a Unix socket on the host and the two exchange protocol hellos.
extension VMBootTests {
    @Suite struct AgentChannelGuestTests {
        /// A one-connection Unix-socket server on its own thread.
        final class HostEnd: Sendable {
            let received = Mutex<[Frame]>([])
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

            /// Accepts one connection, reads frames until the agent's hello, answers with ours.
            func serve() {
                Thread.detachNewThread { [self] in
                    defer { close(listener) }
                    let connection = accept(listener, nil, nil)
                    guard connection >= 0 else { failure.withLock { $0 = "accept: \(errno)" }; return }
                    defer { close(connection) }
                    var reader = FrameReader()
                    var buffer = [UInt8](repeating: 0, count: 4096)
                    while true {
                        let n = buffer.withUnsafeMutableBytes { read(connection, $0.baseAddress, $0.count) }
                        guard n > 0 else { return }
                        do {
                            let frames = try reader.feed(buffer[0..<n])
                            received.withLock { $0 += frames }
                            if frames.contains(where: { if case .control(let m) = $0 { m.type == .hello } else { false } }) {
                                let reply = try Frame.control(.hello()).encoded()
                                _ = reply.withUnsafeBytes { write(connection, $0.baseAddress, $0.count) }
                                // Nothing to start: closing the channel lets the agent end the guest.
                                return
                            }
                        } catch {
                            failure.withLock { $0 = "\(error)" }
                            return
                        }
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
            let frames = host.received.withLock { $0 }
            #expect(frames == [.control(.hello())], "console:\n\(console.text)")
            #expect(console.text.contains("sm-init: agent channel up (protocol v1)"), "console:\n\(console.text)")
        }
    }
}
