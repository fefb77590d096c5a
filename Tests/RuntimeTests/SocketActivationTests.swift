import Testing
import Foundation
@testable import Runtime

extension RuntimeTests {
    /// systemd socket activation: runc passes LISTEN_FDS' fds into the container; a
    /// microVM cannot take host fds, so `create` refuses when some are meant for it.
    @Suite struct SocketActivationTests {
        @Test func fdsForThisProcessAreCounted() {
            #expect(CreateRequest.socketActivationFds(["LISTEN_PID": "42", "LISTEN_FDS": "2"], pid: 42) == 2)
        }

        @Test(arguments: [
            ["LISTEN_PID": "41", "LISTEN_FDS": "2"],  // for another process (systemd's rule)
            ["LISTEN_FDS": "2"],                      // no owner
            ["LISTEN_PID": "42", "LISTEN_FDS": "0"],
            ["LISTEN_PID": "42", "LISTEN_FDS": "x"],
            [:],
        ])
        func noneOtherwise(_ environment: [String: String]) {
            #expect(CreateRequest.socketActivationFds(environment, pid: 42) == 0)
        }
    }
}
