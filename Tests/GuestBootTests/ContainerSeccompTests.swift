import Testing
import Foundation

/// The container's own linux.seccomp profile, applied in the guest: a denied syscall
/// returns the profile's errno to the process; everything else runs.
extension VMBootTests {
    @Suite struct ContainerSeccompTests {
        typealias Run = RunCommandTests

        static var denyMkdir: [String: Any] { [
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [
                ["names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1],
                // Argument filters: kill(pid, 0) probes fail with ESRCH, other kills pass.
                ["names": ["kill"], "action": "SCMP_ACT_ERRNO", "errnoRet": 3,
                 "args": [["index": 1, "value": 0, "op": "SCMP_CMP_EQ"]]],
                ["names": ["no_such_syscall_here"], "action": "SCMP_ACT_ERRNO"],
            ],
        ] }

        @Test func aDeniedSyscallGetsTheProfilesErrno() throws {
            try requireKVM()
            let bundle = try Run.makeBundle(
                args: ["sh", "-c", "mkdir /tmp/denied; echo mkdir=$?; kill -0 $$; echo kill0=$?; echo file > /tmp/allowed && cat /tmp/allowed"],
                linux: ["seccomp": Self.denyMkdir], applets: ["mkdir", "kill"])
            defer { try? FileManager.default.removeItem(at: bundle) }
            let result = try Run.runSMRunc(["-b", bundle.path, "seccomp-deny"])
            let stderr = String(decoding: result.stderr, as: UTF8.self)
            #expect(result.status == 0, "\(stderr)")
            #expect(String(decoding: result.stdout, as: UTF8.self) == "mkdir=1\nkill0=1\nfile\n")
            #expect(stderr.contains("Operation not permitted"), "\(stderr)")
            #expect(stderr.contains("No such process"), "\(stderr)")
            #expect(!FileManager.default.fileExists(atPath: bundle.appendingPathComponent("rootfs/tmp/denied").path))
        }

        @Test func aProfileThatCannotBeAppliedFailsTheCreate() throws {
            let bundle = try Run.makeBundle(args: ["sh", "-c", "exit 0"],
                                            linux: ["seccomp": ["defaultAction": "SCMP_ACT_NOTIFY"]])
            defer { try? FileManager.default.removeItem(at: bundle) }
            let result = try Run.runSMRunc(["-b", bundle.path, "seccomp-notify"])
            #expect(result.status == 1)
            #expect(String(decoding: result.stderr, as: UTF8.self).contains("SCMP_ACT_NOTIFY is not supported"))
        }
    }
}
