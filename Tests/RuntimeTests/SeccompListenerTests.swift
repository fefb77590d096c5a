import Testing
import OCIBundle
@testable import Runtime

extension RuntimeTests {
    /// A seccomp profile with `listenerPath` (runc sends the notify fd there) is
    /// refused before a guest boots: the guest kernel's fd cannot reach a host listener.
    @Suite struct SeccompListenerTests {
        @Test func aListenerPathIsRefusedWithItsPath() {
            let profile = Seccomp(defaultAction: .allow, listenerPath: "/run/agent.sock",
                                  syscalls: [Syscall(names: ["mkdir"], action: .notify)])
            #expect {
                _ = try ContainerSeccomp.compile(profile)
            } throws: { error in
                "\(error)".contains("listenerPath /run/agent.sock") && "\(error)".contains("microVM")
            }
        }

        @Test func aProfileWithoutOneCompiles() throws {
            let profile = Seccomp(defaultAction: .allow, syscalls: [Syscall(names: ["mkdir"], action: .errno)])
            #expect(try !ContainerSeccomp.compile(profile).isEmpty)
        }
    }
}
