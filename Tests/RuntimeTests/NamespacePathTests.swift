import Testing
import Foundation
import OCIBundle
@testable import Runtime

extension RuntimeTests {
    /// Namespaces given by path are checked at create with NS_GET_NSTYPE: a path of
    /// another kind of namespace, or no namespace at all, is refused by name.
    @Suite struct NamespacePathTests {
        /// The description of the error `body` throws ("" when it does not throw).
        func errorText(_ body: () throws -> Void) -> String {
            do { try body(); return "" } catch { return "\(error)" }
        }

        @Test func aPathOfItsOwnTypeIsAccepted() throws {
            try NamespacePaths.check([
                Namespace(type: .ipc, path: "/proc/self/ns/ipc"), Namespace(type: .uts, path: "/proc/self/ns/uts"),
                Namespace(type: .network, path: "/proc/self/ns/net"), Namespace(type: .cgroup, path: "/proc/self/ns/cgroup"),
                Namespace(type: .pid), Namespace(type: .mount, path: ""),
            ])
        }

        @Test func aPathOfAnotherTypeIsRefused() {
            #expect(errorText { try NamespacePaths.check([Namespace(type: .cgroup, path: "/proc/self/ns/ipc")]) }
                    == "linux.namespaces: cgroup path /proc/self/ns/ipc is an ipc namespace, not a cgroup namespace")
            #expect(errorText { try NamespacePaths.check([Namespace(type: .network, path: "/proc/self/ns/uts")]) }
                    .hasSuffix("is a uts namespace, not a network namespace"))
        }

        @Test func aPathThatIsNoNamespaceOrMissingIsRefused() {
            #expect(errorText { try NamespacePaths.check([Namespace(type: .ipc, path: "/etc/hostname")]) }
                    .hasPrefix("linux.namespaces: ipc path /etc/hostname is not a namespace (NS_GET_NSTYPE:"))
            #expect(errorText { try NamespacePaths.check([Namespace(type: .uts, path: "/nonexistent/ns")]) }
                    == "linux.namespaces: uts path /nonexistent/ns: open: no such file or directory")
        }
    }
}
