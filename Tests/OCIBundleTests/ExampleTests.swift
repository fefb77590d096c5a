import Foundation
import Testing
@testable import OCIBundle

@Suite struct ExampleTests {
    @Test func isValidAndLikeRuncSpec() throws {
        let spec = Spec.example()
        #expect(spec.validationErrors() == [])
        #expect(spec.ociVersion == Spec.version)
        #expect(spec.hostname == "sm-runc")
        #expect(spec.root == Root(path: "rootfs", readonly: true))
        let process = try #require(spec.process)
        #expect(process.terminal == true)
        #expect(process.args == ["sh"])
        #expect(process.cwd == "/")
        #expect(process.env == ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"])
        #expect(process.capabilities == .uniform([.auditWrite, .kill, .netBindService]))
        #expect(process.rlimits == [Rlimit(type: .nofile, hard: 1024, soft: 1024)])
        #expect(process.noNewPrivileges == true)
        #expect(spec.mounts?.map(\.destination) == ["/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/sys/fs/cgroup"])
        #expect(spec.mounts?[1].type == "tmpfs")
        #expect(spec.linux?.namespaces?.map(\.type) == [.pid, .network, .ipc, .uts, .mount, .cgroup])
        #expect(spec.linux?.maskedPaths?.contains("/proc/kcore") == true)
        #expect(spec.linux?.readonlyPaths?.contains("/proc/sys") == true)
        #expect(spec.linux?.resources?.devices == [DeviceRule(allow: false, access: "rwm")])
    }

    @Test func takesTheArgs() {
        #expect(Spec.example(args: ["sleep", "100"]).process?.args == ["sleep", "100"])
    }

    @Test func encodesPrettyWithSortedKeysAndRoundTrips() throws {
        let data = try OCIJSON.encode(Spec.example())
        let text = String(decoding: data, as: UTF8.self)
        #expect(text.hasPrefix("{\n  \""))
        #expect(!text.contains(#"\/"#))
        #expect(text.contains(#""destination" : "/dev/pts""#))
        let topLevel = try ["\"hostname\"", "\"linux\"", "\"mounts\"", "\"ociVersion\"", "\"process\"", "\"root\""]
            .map { try #require(text.range(of: "\n  " + $0)?.lowerBound) }
        #expect(topLevel == topLevel.sorted())
        #expect(try OCIJSON.decode(Spec.self, from: data, file: "config.json") == Spec.example())
    }
}
