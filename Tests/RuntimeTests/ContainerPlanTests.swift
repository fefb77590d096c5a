import Testing
import Foundation
import OCIBundle
import AgentProtocol
import VMM
@testable import Runtime

extension RuntimeTests {
    /// The plan `create` resolves once and saves in the state directory: the VMM
    /// process and `exec` read it, never config.json again.
    @Suite struct ContainerPlanTests {
        static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("OCIBundleTests/Fixtures").path

        /// A bundle in `directory` with `config` as its config.json and an empty rootfs.
        static func bundle(_ directory: String, config: [UInt8]) throws -> OCIBundle.Bundle {
            try FileManager.default.createDirectory(atPath: directory + "/rootfs", withIntermediateDirectories: true)
            try Data(config).write(to: URL(fileURLWithPath: directory + "/config.json"))
            return try OCIBundle.Bundle.load(directory, checkRootfs: false)
        }

        static func minimalConfig(annotations: [String: String] = [:]) throws -> [UInt8] {
            var config: [String: Any] = [
                "ociVersion": "1.0.2",
                "process": ["args": ["sh"], "cwd": "/work", "env": ["PATH=/bin", "A=1"], "user": ["uid": 7, "gid": 8]],
                "root": ["path": "rootfs"],
            ]
            if !annotations.isEmpty { config["annotations"] = annotations }
            return Array(try JSONSerialization.data(withJSONObject: config))
        }

        /// podman's config for `run --rm -v` (mounts, capabilities, seccomp,
        /// annotations): the plan read back is the plan saved, size origins included.
        /// A traced engine config with its placeholders (`<runroot>`, `<graphroot>`,
        /// `<host-dir>`, `<id>`) pointed into `directory`, and every bind source made
        /// there (a directory for the volume and shm, a file for the others).
        static func engineConfig(_ fixture: String, in directory: String) throws -> [UInt8] {
            var text = String(decoding: try readWholeFile(Self.fixtures + "/" + fixture), as: UTF8.self)
            for (placeholder, path) in [("<runroot>", "/runroot"), ("<graphroot>", "/graphroot"), ("<host-dir>", "/host-dir"), ("<id>", "c1")] {
                text = text.replacingOccurrences(of: placeholder, with: placeholder == "<id>" ? path : directory + path)
            }
            let config = try OCIJSON.decode(Spec.self, from: Array(text.utf8), file: fixture)
            for mount in config.mounts ?? [] where BindShares.isBind(mount) {
                let source = try #require(mount.source)
                if source.hasSuffix("/shm") || source.hasSuffix("/host-dir") {
                    try FileManager.default.createDirectory(atPath: source, withIntermediateDirectories: true)
                } else {
                    try FileManager.default.createDirectory(atPath: (source as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
                    FileManager.default.createFile(atPath: source, contents: Data("x\n".utf8))
                }
            }
            return Array(text.utf8)
        }

        @Test(arguments: ["podman-run-rm-volume.config.json", "podman-run-rm-t.config.json", "containerd-run-d.config.json"])
        func aPlanReadsBackAsSaved(_ fixture: String) throws {
            let directory = try TemporaryDirectory()
            let bundle = try Self.bundle(directory.path + "/bundle", config: try Self.engineConfig(fixture, in: directory.path))
            let plan = try ContainerPlan(bundle: bundle, hostCPUs: 8)
            #expect(plan.spec == bundle.spec && plan.bundle == bundle.path && plan.rootfs == bundle.rootfs)
            // The binds, resolved once: each staged in its slot, the agent's mounts pointing there.
            let binds = (bundle.spec.mounts ?? []).filter(BindShares.isBind)
            #expect(plan.binds.staged.map(\.source) == binds.map { $0.source! })
            #expect(plan.binds.mounts.filter(BindShares.isBind).map(\.source) ==
                    binds.indices.map { GuestLayout.bindsDirectory + "/\($0)" })
            let state = try StateDirectory.create(root: directory.path + "/root", id: "c1")
            try state.savePlan(plan)
            let loaded = try state.loadPlan()
            #expect(loaded == plan)
            #expect(loaded.size.origin == plan.size.origin && !plan.size.origin.isEmpty)
            #expect((lstatus(state.planPath)?.st_mode ?? 0) & 0o777 == 0o600)
            try state.remove()
            #expect(lstatus(state.path) == nil)
        }

        /// A bind source that does not exist fails `create`, in runc's words, before
        /// anything is made: the plan checks it once.
        @Test func aMissingBindSourceRefusesThePlan() throws {
            let directory = try TemporaryDirectory()
            var config = try JSONSerialization.jsonObject(with: Data(try Self.minimalConfig())) as! [String: Any]
            config["mounts"] = [["destination": "/data", "type": "bind", "source": "missing", "options": ["rbind"]]]
            let bundle = try Self.bundle(directory.path, config: Array(try JSONSerialization.data(withJSONObject: config)))
            #expect(errorText { _ = try ContainerPlan(bundle: bundle, hostCPUs: 8) }
                    == "mount \(bundle.path)/missing to /data: no such file or directory")
        }

        /// The machine part of the plan (kernel, agent, command line, snapshot entry)
        /// survives the state directory as decided, so the VMM hashes nothing again.
        @Test func theMachinePartOfThePlanReadsBackAsSaved() throws {
            let directory = try TemporaryDirectory()
            let bundle = try Self.bundle(directory.path + "/bundle", config: try Self.minimalConfig())
            var plan = try ContainerPlan(bundle: bundle, hostCPUs: 8)
            let identity = SnapshotIdentity(vmmVersion: SnapshotCache.vmmVersion, kernel: Array(repeating: 1, count: 32),
                                            agent: Array(repeating: 0xab, count: 32))
            plan.machine = .init(kernel: "/k/vmlinux", guestRoot: "/g", commandLine: "console=hvc0 quiet",
                                 snapshot: SnapshotCache.Entry(identity: identity, key: String(repeating: "e", count: 64)), noSnapshot: nil)
            let state = try StateDirectory.create(root: directory.path + "/root", id: "c1")
            defer { try? state.remove() }
            try state.savePlan(plan)
            let loaded = try state.loadPlan()
            #expect(loaded == plan)
            #expect(loaded.machine?.snapshot?.identity == identity)
        }

        /// The smallest memory limit that works: 48 MiB (the validation suite's) gives a
        /// 32 MiB guest and 16 MiB for the VMM; a megabyte less is refused, in words.
        @Test func aFortyEightMiBLimitGivesTheSmallestGuestAndLessIsRefused() throws {
            func size(limitMiB: Int64) throws -> GuestSize {
                var config = try JSONSerialization.jsonObject(with: Data(try Self.minimalConfig())) as! [String: Any]
                config["linux"] = ["resources": ["memory": ["limit": limitMiB << 20]]]
                let directory = try TemporaryDirectory()
                let bundle = try Self.bundle(directory.path, config: Array(try JSONSerialization.data(withJSONObject: config)))
                return try ContainerPlan(bundle: bundle, hostCPUs: 8).size
            }
            #expect(try size(limitMiB: 48) == GuestSize(memoryMiB: 32, vcpus: 1))
            #expect(try size(limitMiB: 128) == GuestSize(memoryMiB: 112, vcpus: 1))
            #expect(errorText { _ = try size(limitMiB: 47) }
                    == "linux.resources.memory.limit: \(47 << 20) bytes is below what this microVM needs (32 MiB of guest RAM + 16 MiB for the VMM)")
        }

        @Test func thePlanHoldsTheSizeFromTheAnnotations() throws {
            let directory = try TemporaryDirectory()
            let bundle = try Self.bundle(directory.path, config: try Self.minimalConfig(
                annotations: [GuestSize.memoryAnnotation: "256", GuestSize.vcpusAnnotation: "2"]))
            let plan = try ContainerPlan(bundle: bundle, hostCPUs: 8)
            #expect(plan.size == GuestSize(memoryMiB: 256, vcpus: 2))
            #expect(plan.size.origin == "memory: \(GuestSize.memoryAnnotation); vCPUs: \(GuestSize.vcpusAnnotation)")
        }

        @Test func aSizeTheHostCannotGiveRefusesThePlan() throws {
            let directory = try TemporaryDirectory()
            let bundle = try Self.bundle(directory.path, config: try Self.minimalConfig(annotations: [GuestSize.vcpusAnnotation: "3"]))
            #expect(errorText { _ = try ContainerPlan(bundle: bundle, hostCPUs: 2) }
                    == "annotation \(GuestSize.vcpusAnnotation): 3 vCPUs, this host gives a microVM at most 2")
        }

        @Test func aMissingPlanIsAnErrorNamingItNotABundleRead() throws {
            let directory = try TemporaryDirectory()
            let state = try StateDirectory.create(root: directory.path, id: "c1")
            #expect(errorText { _ = try state.loadPlan() } == "open \(state.planPath): no such file or directory")
            try Data("{\"bundle\":".utf8).write(to: URL(fileURLWithPath: state.planPath))
            let message = errorText { _ = try state.loadPlan() }
            #expect(message.hasPrefix("\(state.planPath): invalid JSON"), "\(message)")
        }

        /// `exec CMD` takes the container's process (env, cwd, user) from the plan:
        /// with config.json deleted it still does, and adds the command's options.
        @Test func execBuildsItsProcessFromThePlanWithConfigJSONGone() throws {
            let directory = try TemporaryDirectory()
            let bundle = try Self.bundle(directory.path + "/bundle", config: try Self.minimalConfig())
            let root = directory.path + "/root"
            let state = try StateDirectory.create(root: root, id: "c1")
            try state.savePlan(try ContainerPlan(bundle: bundle, hostCPUs: 8))
            try state.save(ContainerRecord(id: "c1", pid: getpid(), pidStartTime: ProcessIdentity.ownStartTime, status: .running,
                                           bundle: bundle.path, rootfs: bundle.rootfs, created: "now", owner: "root"))
            try FileManager.default.removeItem(atPath: bundle.configPath)

            let exec = ExecRequest(processFile: nil, command: ["ls", "-l"], tty: false, cwd: nil, env: ["B=2"], user: nil, noNewPrivs: false)
            let process = try exec.process(in: try ContainerLookup(root: root, id: "c1"))
            #expect(process.args == ["ls", "-l"])
            #expect(process.env == ["PATH=/bin", "A=1", "B=2"])
            #expect(process.cwd == "/work" && process.user.uid == 7 && process.user.gid == 8)

            // Without the plan, exec refuses rather than guess a process.
            unlink(state.planPath)
            #expect(errorText { _ = try exec.process(in: try ContainerLookup(root: root, id: "c1")) }
                    == "open \(state.planPath): no such file or directory")
        }
    }
}

/// The description of the error `body` throws ("" when it does not throw).
private func errorText(_ body: () throws -> Void) -> String {
    do { try body() } catch { return "\(error)" }
    return ""
}
