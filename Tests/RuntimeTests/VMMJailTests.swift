import Testing
import Foundation
import OCIBundle
@testable import VMM
@testable import Runtime

extension RuntimeTests {
    /// What the VMM's jail holds and which capabilities the VMM keeps, without a VM.
    @Suite struct VMMJailTests {
        @Test func theJailHoldsTheSharesTheStateDirectoryAndTheLogAtTheirHostPaths() throws {
            let jail = ContainerHost.jail(shares: [("/g/root", true), ("/b/rootfs", false), ("/run/s/c/binds", true)],
                                          stateDirectory: "/run/s/c", logPath: "/var/log/x.json", workingDirectory: "/w")
            #expect(jail.staging == "/run/s/c/jail")
            #expect(jail.entries == [
                Jail.Entry(path: "/g/root", recursive: true, readOnly: true),
                Jail.Entry(path: "/b/rootfs", recursive: true, readOnly: false),
                Jail.Entry(path: "/run/s/c/binds", recursive: true, readOnly: true),
                Jail.Entry(path: "/run/s/c", recursive: false, readOnly: false),
                Jail.Entry(path: "/var/log/x.json", recursive: false, readOnly: false),
            ])
            #expect(jail.staged("/b/rootfs") == "/run/s/c/jail/b/rootfs")
            #expect(Jail.path(of: "/b/rootfs") == "/b/rootfs")
            #expect(ContainerHost.absolute("log.json", cwd: "/w") == "/w/log.json")
            #expect(ContainerHost.absolute("log.json", cwd: "/") == "/log.json")
        }

        /// Parents first (the state directory before the bind staging in it); what a
        /// recursive entry already shows is not bound again; no "." or "..".
        @Test func theMountPlanPutsParentsFirstAndRefusesDotDot() throws {
            let plan = try Jail.plan([
                Jail.Entry(path: "/run/s/c/binds", recursive: true, readOnly: false),
                Jail.Entry(path: "/run/s/c", recursive: false, readOnly: false),
                Jail.Entry(path: "/b/rootfs", recursive: true, readOnly: false),
                Jail.Entry(path: "/b/rootfs/inner", recursive: true, readOnly: false),
                Jail.Entry(path: "/b//rootfs/", recursive: true, readOnly: false),
            ])
            #expect(plan.map(\.path) == ["/b/rootfs", "/run/s/c", "/run/s/c/binds"])
            #expect(throws: SystemCallError.self) { try Jail.plan([Jail.Entry(path: "/a/../etc", recursive: true, readOnly: false)]) }
            #expect(throws: SystemCallError.self) { try Jail.plan([Jail.Entry(path: "relative", recursive: true, readOnly: false)]) }
            #expect(Jail.unescape(Array("/a\\040b".utf8)) == "/a b")
        }

        @Test func theVMMKeepsFSETIDAndMKNODOnlyWhenTheSpecGrantsThem() throws {
            func names(_ bounding: [String]?, devTmpfs: Bool = true) -> [String] {
                var process = OCIBundle.Process(args: ["true"], cwd: "/")
                process.capabilities = bounding.map { Capabilities(bounding: $0.map { Capability(rawValue: $0) }) }
                var spec = Spec(process: process)
                spec.mounts = devTmpfs ? [Mount(destination: "/dev", type: "tmpfs", source: "tmpfs")] : []
                return VMMCapabilities.kept(for: spec).map(\.name)
            }
            #expect(names(nil) == ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER"])
            #expect(names(["CAP_KILL", "CAP_AUDIT_WRITE"]) == ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER"])
            #expect(names(["CAP_MKNOD"]) == ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_MKNOD"])
            // podman's and Docker's defaults grant both.
            #expect(names(["CAP_CHOWN", "CAP_FSETID", "CAP_MKNOD", "CAP_SETUID"]) == ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_MKNOD"])
            // No tmpfs at /dev: the agent makes the spec's devices on the rootfs share.
            #expect(names(nil, devTmpfs: false) == ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_MKNOD"])
        }
    }
}
