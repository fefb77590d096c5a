import Foundation
import Testing
@testable import OCIBundle

/// The configs and process files podman and containerd actually wrote (engines.md §7).
@Suite struct FixtureTests {
    @Test(arguments: Fixtures.configs)
    func configDecodesAndValidates(_ fixture: Fixture) throws {
        let spec = try decodeSpec(fixture.json)
        #expect(spec.ociVersion == "1.0.2-dev")
        #expect(spec.validationErrors() == [])
        #expect(spec.process?.args?.isEmpty == false)
        #expect(spec.linux?.namespace(.pid) != nil)
    }

    @Test(arguments: Fixtures.configs)
    func configRoundTripsLosslessly(_ fixture: Fixture) throws {
        let spec = try decodeSpec(fixture.json)
        let encoded = try OCIJSON.encode(spec)
        #expect(try canonicalJSON(encoded) == canonicalJSON(fixture.json))
        #expect(try OCIJSON.decode(Spec.self, from: encoded, file: "config.json") == spec)
    }

    @Test(arguments: Fixtures.processes)
    func processFileDecodesValidatesAndRoundTrips(_ fixture: Fixture) throws {
        let process = try OCIJSON.decode(Spec.Process.self, from: fixture.json, file: fixture.name)
        #expect(process.validationErrors(file: fixture.name) == [])
        #expect(process.args == ["echo", "from-exec"])
        let encoded = try OCIJSON.encode(process)
        #expect(try canonicalJSON(encoded) == canonicalJSON(fixture.json))
    }

    @Test func podmanDetails() throws {
        let spec = try decodeSpec(Fixtures.podmanRunD)
        let process = try #require(spec.process)
        #expect(process.user == User(uid: 0, gid: 0, umask: 0o22))
        #expect(process.terminal == nil)
        #expect(process.rlimits == [Rlimit(type: .nofile, hard: 20000, soft: 20000), Rlimit(type: .nproc, hard: 32768, soft: 32768)])
        #expect(process.capabilities?.bounding?.count == 14)
        #expect(process.capabilities?.inheritable == nil)
        #expect(spec.root == Root(path: "<graphroot>/overlay/<layer-id>/merged"))
        #expect(spec.annotations?["io.container.manager"] == "libpod")
        #expect(spec.mounts?.count == 10)
        #expect(spec.mounts?[5] == Mount(destination: "/etc/hostname", type: "bind", source: "<runroot>/overlay-containers/<id>/userdata/hostname", options: ["bind", "rprivate"]))

        let linux = try #require(spec.linux)
        #expect(linux.namespaces?.map(\.type) == [.pid, .network, .ipc, .uts, .mount])
        #expect(linux.resources == Resources(devices: [DeviceRule(allow: false, access: "rwm")], pids: Pids(limit: 2048)))
        #expect(linux.cgroupsPath == "/libpod_parent/libpod-<id>")
        #expect(linux.maskedPaths?.count == 11)
        #expect(linux.readonlyPaths?.count == 6)

        let seccomp = try #require(linux.seccomp)
        #expect(seccomp.defaultAction == .errno)
        #expect(seccomp.defaultErrnoRet == 38)
        #expect(seccomp.architectures == [.x86_64, .x86, .x32])
        #expect(seccomp.syscalls?.count == 19)
        #expect(seccomp.syscalls?.first?.errnoRet == 1)
        let personality = seccomp.syscalls?.filter { $0.names == ["personality"] }.compactMap { $0.args?.first }
        #expect(personality?.map(\.value) == [0, 8, 131072, 131080, 4_294_967_295])
        #expect(personality?.allSatisfy { $0.op == .equal && $0.index == 0 && $0.valueTwo == nil } == true)
    }

    @Test func podmanVariants() throws {
        let tty = try decodeSpec(Fixtures.podmanRunRmT)
        #expect(tty.process?.terminal == true)
        #expect(tty.process?.args == ["sh", "-c", "tty; echo hi"])
        let volume = try decodeSpec(Fixtures.podmanRunRmVolume)
        #expect(volume.mounts?.first == Mount(destination: "/data", type: "bind", source: "<host-dir>", options: ["rw", "rprivate", "rbind"]))
    }

    @Test func containerdDetails() throws {
        let spec = try decodeSpec(Fixtures.containerdRunD)
        #expect(spec.root == Root(path: "rootfs"))
        #expect(spec.hostname == nil)
        #expect(spec.process?.noNewPrivileges == true)
        #expect(spec.process?.user.additionalGids == [0])
        let rules = try #require(spec.linux?.resources?.devices)
        #expect(rules.count == 10)
        #expect(rules[0] == DeviceRule(allow: false, access: "rwm"))
        #expect(rules[1] == DeviceRule(allow: true, type: .char, major: 1, minor: 3, access: "rwm"))
        #expect(rules[8] == DeviceRule(allow: true, type: .char, major: 136, access: "rwm"))
        #expect(spec.linux?.resources?.cpu == CPU(shares: 1024))
        #expect(spec.linux?.seccomp == nil)
        #expect(spec.mounts?.last?.destination == "/run")
    }
}
