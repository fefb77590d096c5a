import Testing
import Foundation
import OCIBundle
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
        @Test(arguments: ["podman-run-rm-volume.config.json", "podman-run-rm-t.config.json", "containerd-run-d.config.json"])
        func aPlanReadsBackAsSaved(_ fixture: String) throws {
            let directory = try TemporaryDirectory()
            let bundle = try Self.bundle(directory.path + "/bundle", config: try readWholeFile(Self.fixtures + "/" + fixture))
            let plan = try ContainerPlan(bundle: bundle, hostCPUs: 8)
            #expect(plan.spec == bundle.spec && plan.bundle == bundle.path && plan.rootfs == bundle.rootfs)
            let state = try StateDirectory.create(root: directory.path + "/root", id: "c1")
            try state.savePlan(plan)
            let loaded = try state.loadPlan()
            #expect(loaded == plan)
            #expect(loaded.size.origin == plan.size.origin && !plan.size.origin.isEmpty)
            #expect((lstatus(state.planPath)?.st_mode ?? 0) & 0o777 == 0o600)
            try state.remove()
            #expect(lstatus(state.path) == nil)
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
