import Testing
import Foundation
import OCIBundle
@testable import VMM
@testable import Runtime

extension RuntimeTests {
    /// The snapshot a container starts from is found by a key of what the snapshot
    /// holds (kernel, agent, size, devices, command line), never of the bundle's mounts:
    /// a bundle with bind mounts (which make its binds share read-write) has the key
    /// of the same bundle without them, and of what the first-use maker makes.
    @Suite struct SnapshotKeyTests {
        static let kernelHash = [UInt8](repeating: 0x11, count: 32)
        static let cpu = [UInt8](repeating: 0x33, count: 32)
        static let agentHash = [UInt8](repeating: 0x22, count: 32)

        /// A bundle in `directory`: an empty rootfs and a config.json with `mounts`
        /// and `annotations`.
        static func bundle(_ directory: String, mounts: [[String: Any]], annotations: [String: String] = [:]) throws -> OCIBundle.Bundle {
            try FileManager.default.createDirectory(atPath: directory + "/rootfs", withIntermediateDirectories: true)
            var config: [String: Any] = [
                "ociVersion": "1.0.2",
                "process": ["args": ["sh"], "cwd": "/", "user": ["uid": 0, "gid": 0]],
                "root": ["path": "rootfs"],
                "mounts": [["destination": "/proc", "type": "proc", "source": "proc"]] + mounts,
            ]
            if !annotations.isEmpty { config["annotations"] = annotations }
            let data = try JSONSerialization.data(withJSONObject: config)
            try data.write(to: URL(fileURLWithPath: directory + "/config.json"))
            return try OCIBundle.Bundle.load(directory)
        }

        /// The container's machine as `ContainerHost` configures it (its binds staged
        /// by `BindShares` in `state`, released after) and that machine's snapshot key.
        static func key(of bundle: OCIBundle.Bundle, state: String) throws -> (key: String, binds: MachineConfiguration.Share) {
            try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
            let binds = try BindShares.prepare(try BindShares.plan(mounts: bundle.spec.mounts ?? [], bundle: bundle.path), stateDirectory: state)
            defer { BindShares.release(stateDirectory: state) }
            let configuration = SnapshotCache.configuration(kernel: "/kernel", guestRoot: "/guest", size: try GuestSize.of(bundle.spec, hostCPUs: 8),
                                                            rootfs: bundle.rootfs, binds: binds.share, vsock: state + "/vsock")
            return (try SnapshotCache.key(for: configuration, kernel: kernelHash, agent: agentHash, cpu: SnapshotKeyTests.cpu), binds.share)
        }

        /// The key of the snapshot the first-use maker (and `sm-runc snapshot`) makes for `size`.
        static func makersKey(_ size: GuestSize) throws -> String {
            try SnapshotCache.key(for: SnapshotCache.template(kernel: "/other-path/kernel", guestRoot: "/guest", size: size),
                                  kernel: kernelHash, agent: agentHash, cpu: cpu)
        }

        @Test func bindMountsAndShareModesAreNotInTheKeySizeIs() throws {
            try requireRoot()   // BindShares stages the binds with mount(2)
            let top = try TemporaryDirectory("sm-runc-key")
            let volume = top.path + "/volume", hostname = top.path + "/hostname"
            try FileManager.default.createDirectory(atPath: volume, withIntermediateDirectories: true)
            try Data("host\n".utf8).write(to: URL(fileURLWithPath: hostname))
            // As podman makes them: a rw volume, a ro one, single-file binds.
            let binds: [[String: Any]] = [
                ["destination": "/data", "type": "bind", "source": volume, "options": ["rbind", "rw"]],
                ["destination": "/ro", "type": "bind", "source": volume, "options": ["rbind", "ro"]],
                ["destination": "/etc/hostname", "type": "bind", "source": hostname, "options": ["bind", "rprivate"]],
            ]
            let withBinds = try Self.key(of: try Self.bundle(top.path + "/with", mounts: binds), state: top.path + "/state-with")
            let without = try Self.key(of: try Self.bundle(top.path + "/without", mounts: []), state: top.path + "/state-without")
            // The modes differ (what the key used to depend on)...
            #expect(withBinds.binds.readOnly == false && without.binds.readOnly == true)
            // ...the keys do not, and both are the maker's.
            #expect(withBinds.key == without.key)
            let defaultSize = GuestSize(memoryMiB: GuestSize.defaultMemoryMiB, vcpus: 1)
            #expect(withBinds.key == (try Self.makersKey(defaultSize)))

            // Another size is another snapshot: memory, vCPUs.
            let bigger = try Self.key(of: try Self.bundle(top.path + "/memory", mounts: binds, annotations: [GuestSize.memoryAnnotation: "256"]),
                                      state: top.path + "/state-memory")
            let twoCPUs = try Self.key(of: try Self.bundle(top.path + "/vcpus", mounts: binds, annotations: [GuestSize.vcpusAnnotation: "2"]),
                                       state: top.path + "/state-vcpus")
            #expect(Set([withBinds.key, bigger.key, twoCPUs.key]).count == 3)
            #expect(bigger.key == (try Self.makersKey(GuestSize(memoryMiB: 256, vcpus: 1))))
            #expect(twoCPUs.key == (try Self.makersKey(GuestSize(memoryMiB: GuestSize.defaultMemoryMiB, vcpus: 2))))
            // Nothing is left mounted or staged.
            for state in ["with", "without", "memory", "vcpus"] {
                #expect(lstatus(top.path + "/state-\(state)/binds") == nil, "state-\(state)/binds is left")
            }
        }

        @Test func theKeyFollowsTheKernelAgentDevicesAndCommandLine() throws {
            let size = GuestSize(memoryMiB: 128, vcpus: 1)
            let template = SnapshotCache.template(kernel: "/kernel", guestRoot: "/guest", size: size)
            let key = try SnapshotCache.key(for: template, kernel: Self.kernelHash, agent: Self.agentHash, cpu: SnapshotKeyTests.cpu)
            var otherKernel = Self.kernelHash
            otherKernel[0] ^= 1
            #expect(try SnapshotCache.key(for: template, kernel: otherKernel, agent: Self.agentHash, cpu: SnapshotKeyTests.cpu) != key)
            #expect(try SnapshotCache.key(for: template, kernel: Self.kernelHash, agent: otherKernel, cpu: SnapshotKeyTests.cpu) != key)
            // The shares' host paths and modes are not in it (but the guest root's mode,
            // on the command line); their tags and order are.
            var moved = template
            for i in moved.shares.indices {
                moved.shares[i].hostPath = "/elsewhere/\(i)"
                if moved.shares[i].tag != moved.rootShare?.tag { moved.shares[i].readOnly.toggle() }
            }
            moved.vsockSocketPath = "/elsewhere/vsock"
            #expect(try SnapshotCache.key(for: moved, kernel: Self.kernelHash, agent: Self.agentHash, cpu: SnapshotKeyTests.cpu) == key)
            var writableRoot = template
            writableRoot.shares[0].readOnly = false
            #expect(writableRoot.rootShare?.tag == writableRoot.shares[0].tag)
            #expect(try SnapshotCache.key(for: writableRoot, kernel: Self.kernelHash, agent: Self.agentHash, cpu: SnapshotKeyTests.cpu) != key)
            var renamed = template
            renamed.shares[2].tag = "other"
            #expect(try SnapshotCache.key(for: renamed, kernel: Self.kernelHash, agent: Self.agentHash, cpu: SnapshotKeyTests.cpu) != key)
            var swapped = template
            swapped.shares.swapAt(1, 2)
            #expect(try SnapshotCache.key(for: swapped, kernel: Self.kernelHash, agent: Self.agentHash, cpu: SnapshotKeyTests.cpu) != key)
            var noVsock = template
            noVsock.vsockSocketPath = nil
            #expect(try SnapshotCache.key(for: noVsock, kernel: Self.kernelHash, agent: Self.agentHash, cpu: SnapshotKeyTests.cpu) != key)
            var parameters = template
            parameters.extraKernelParameters.append("sm.extra=1")
            #expect(try SnapshotCache.key(for: parameters, kernel: Self.kernelHash, agent: Self.agentHash, cpu: SnapshotKeyTests.cpu) != key)
            var otherHost = template
            otherHost.hostKind = (HostKind.detect() == .emulating) ? .hardware : .emulating
            #expect(try SnapshotCache.key(for: otherHost, kernel: Self.kernelHash, agent: Self.agentHash, cpu: SnapshotKeyTests.cpu) != key)
            // Another host CPU: the guest kernel patched itself for this one.
            var otherCPU = Self.cpu
            otherCPU[31] ^= 1
            #expect(try SnapshotCache.key(for: template, kernel: Self.kernelHash, agent: Self.agentHash, cpu: otherCPU) != key)
        }
    }
}
