import Testing
import Foundation
@testable import Runtime

extension RuntimeTests {
    /// The VMM's control socket: the host's only way to the VMM but SIGKILL.
    @Suite struct ControlChannelTests {
        /// accept(2) behind a queue of errors, counting its calls.
        final class FailingAccept: @unchecked Sendable {
            private let lock = NSLock()
            private var failures: [Int32]
            private(set) var calls = 0

            init(_ failures: [Int32]) { self.failures = failures }

            var remaining: Int { lock.withLock { failures.count } }
            var callCount: Int { lock.withLock { calls } }

            func accept(_ listener: Int32) -> Int32 {
                let failure = lock.withLock { () -> Int32? in
                    calls += 1
                    return failures.isEmpty ? nil : failures.removeFirst()
                }
                if let failure {
                    errno = failure
                    return -1
                }
                return Foundation.accept(listener, nil, nil)
            }
        }

        @Test func theAcceptLoopOutlivesTransientErrorsAndEndsOnlyWhenStopped() throws {
            let directory = try TemporaryDirectory()
            let path = directory.path + "/control.sock"
            // What a guest holding every fd it can, or a burst of connections, causes.
            let accept = FailingAccept([EMFILE, ENFILE, ENOBUFS, ENOMEM, EPROTO, EMFILE])
            let server = try ControlChannel.Server(path: path, accept: accept.accept) { request in .success("echo " + request.line) }
            #expect(try ControlChannel.request("ping", socket: path, timeout: 10) == "echo ping")
            #expect(accept.remaining == 0)
            #expect(try ControlChannel.request("again", socket: path, timeout: 10) == "echo again")
            server.stop()
            usleep(200_000)
            let calls = accept.callCount
            usleep(2 * ControlChannel.Server.maximumPause)
            #expect(accept.callCount == calls, "the accept loop goes on after stop")
        }
    }
}
