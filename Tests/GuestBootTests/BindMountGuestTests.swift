import Testing
import Foundation
import VMM

/// Bind mounts of host paths (the `binds` share), masked and read-only paths and
/// cgroup2, seen from inside a container run by `sm-runc run`; and what the host
/// keeps afterwards: no mounts, no state directory, the bind sources intact.
extension VMBootTests {
    @Suite struct BindMountGuestTests {
        typealias Run = RunCommandTests

        /// The host's mount table lines that mention `path`.
        static func mountLines(containing path: String) -> [String] {
            ((try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)) ?? "")
                .split(separator: "\n").map(String.init).filter { $0.contains(path) }
        }

        static func write(_ text: String, _ path: URL) throws {
            try FileManager.default.createDirectory(at: path.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data(text.utf8).write(to: path)
        }

        /// Everything in one boot: each line the script prints is one check.
        @Test func bindsMasksAndReadonlyPathsInOneContainer() throws {
            try requireKVM()
            let script = """
                exec 2>&1
                echo "ro-read=$(cat /mnt/ro/hello)"
                touch /mnt/ro/new || echo ro-write-refused
                echo "rw-read=$(cat /mnt/rw/from-host)"
                echo guest-data > /mnt/rw/from-guest && echo rw-write-ok
                echo "file=$(cat /etc/bound/name)"
                echo "bound-dir=$(ls -A /etc/bound | tr '\\n' ' ')"
                test -e /run/sm-binds && echo binds-visible || echo binds-hidden
                echo "masked-file=[$(cat /etc/masked-file)]"
                echo "masked-dir=[$(ls -A /masked-dir)]"
                touch /ro-path/x || echo ro-path-refused
                echo "ro-path-read=$(cat /ro-path/keep)"
                test -e /sys/fs/cgroup/cgroup.procs && echo cgroup-ok
                """
            let host = FileManager.default.temporaryDirectory.appendingPathComponent("sm-runc-binds-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
            defer { try? FileManager.default.removeItem(at: host) }
            try Self.write("ro-content\n", host.appendingPathComponent("ro-dir/hello"))
            try Self.write("bound-file\n", host.appendingPathComponent("files/name"))
            try Self.write("sibling-secret\n", host.appendingPathComponent("files/sibling"))
            let bundle = try Run.makeBundle(
                args: ["sh", "-c", script],
                mounts: [
                    ["destination": "/mnt/ro", "type": "bind", "source": host.appendingPathComponent("ro-dir").path, "options": ["rbind", "ro"]],
                    // Relative: to the bundle directory, as the runtime spec says.
                    ["destination": "/mnt/rw", "type": "none", "source": "rw-dir", "options": ["bind", "rw"]],
                    ["destination": "/etc/bound/name", "type": "bind", "source": host.appendingPathComponent("files/name").path,
                     "options": ["bind", "ro", "nosuid", "nodev"]],
                    ["destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                     "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]],
                ],
                linux: [
                    "maskedPaths": ["/etc/masked-file", "/masked-dir", "/no/such/path"],
                    "readonlyPaths": ["/ro-path", "/no/such/ro-path"],
                ],
                applets: ["touch", "ls", "tr", "test"])
            defer { try? FileManager.default.removeItem(at: bundle) }
            try Self.write("host-file\n", bundle.appendingPathComponent("rw-dir/from-host"))
            let rootfs = bundle.appendingPathComponent("rootfs")
            try Self.write("masked secret\n", rootfs.appendingPathComponent("etc/masked-file"))
            try Self.write("hidden\n", rootfs.appendingPathComponent("masked-dir/inside"))
            try Self.write("kept\n", rootfs.appendingPathComponent("ro-path/keep"))

            let id = "run-binds"
            let result = try Run.runSMRunc(["-b", bundle.path, id])
            let output = String(decoding: result.stdout, as: UTF8.self)
            #expect(result.status == 0, "stderr: \(String(decoding: result.stderr, as: UTF8.self))")
            let lines = output.split(separator: "\n").map(String.init)
            #expect(lines.contains("ro-read=ro-content"), "\(output)")
            #expect(lines.contains { $0.contains("/mnt/ro/new") && $0.contains("Read-only file system") }, "\(output)")
            #expect(lines.contains("ro-write-refused"))
            #expect(lines.contains("rw-read=host-file"))
            #expect(lines.contains("rw-write-ok"))
            #expect(lines.contains("file=bound-file"))
            #expect(lines.contains("bound-dir=name "), "only the bound file, not its host siblings")
            #expect(lines.contains("binds-hidden"))
            #expect(lines.contains("masked-file=[]"))
            #expect(lines.contains("masked-dir=[]"))
            #expect(lines.contains { $0.contains("/ro-path/x") && $0.contains("Read-only file system") }, "\(output)")
            #expect(lines.contains("ro-path-refused"))
            #expect(lines.contains("ro-path-read=kept"))
            #expect(lines.contains("cgroup-ok"), "\(output)")

            // On the host: the guest's write landed, the read-only source is untouched,
            // and nothing of the container is left mounted or on disk.
            #expect(try String(contentsOf: bundle.appendingPathComponent("rw-dir/from-guest"), encoding: .utf8) == "guest-data\n")
            #expect(!FileManager.default.fileExists(atPath: host.appendingPathComponent("ro-dir/new").path))
            #expect(try String(contentsOf: host.appendingPathComponent("ro-dir/hello"), encoding: .utf8) == "ro-content\n")
            #expect(try String(contentsOf: host.appendingPathComponent("files/name"), encoding: .utf8) == "bound-file\n")
            #expect(try String(contentsOf: host.appendingPathComponent("files/sibling"), encoding: .utf8) == "sibling-secret\n")
            #expect(try String(contentsOf: rootfs.appendingPathComponent("etc/masked-file"), encoding: .utf8) == "masked secret\n")
            let state = Run.stateRoot + "/" + id
            #expect(Self.mountLines(containing: state).isEmpty, "\(Self.mountLines(containing: state))")
            #expect(!FileManager.default.fileExists(atPath: state))
        }

        /// A run that fails after the binds were staged (here: the agent socket's
        /// path is too long) still leaves no mount and no state directory. No VM.
        @Test func aRunThatFailsAfterStagingLeavesNothing() throws {
            let host = FileManager.default.temporaryDirectory.appendingPathComponent("sm-runc-binds-fail-\(getpid())")
            defer { try? FileManager.default.removeItem(at: host) }
            try Self.write("data\n", host.appendingPathComponent("dir/file"))
            try Self.write("single\n", host.appendingPathComponent("single"))
            let bundle = try Run.makeBundle(args: ["true"], mounts: [
                ["destination": "/a", "type": "bind", "source": host.appendingPathComponent("dir").path, "options": ["rbind", "ro"]],
                ["destination": "/b", "type": "bind", "source": host.appendingPathComponent("single").path, "options": ["bind"]],
            ])
            defer { try? FileManager.default.removeItem(at: bundle) }
            let root = FileManager.default.temporaryDirectory.appendingPathComponent("sm-runc-state-\(getpid())-" + String(repeating: "x", count: 80)).path
            defer { rmdir(root) }
            let result = try Run.runSMRunc(["-b", bundle.path, "run-binds-fail"], root: root)
            #expect(result.status == 1)
            #expect(String(decoding: result.stderr, as: UTF8.self).contains("socket path too long"))
            #expect(Self.mountLines(containing: root).isEmpty)
            #expect(!FileManager.default.fileExists(atPath: root + "/run-binds-fail"))
            #expect(try String(contentsOf: host.appendingPathComponent("dir/file"), encoding: .utf8) == "data\n")
            #expect(try String(contentsOf: host.appendingPathComponent("single"), encoding: .utf8) == "single\n")
        }

        @Test func aMissingBindSourceIsReportedAndLeavesNoState() throws {
            let bundle = try Run.makeBundle(args: ["true"], mounts: [
                ["destination": "/data", "type": "bind", "source": "/nonexistent-bind-source", "options": ["rbind"]],
            ])
            defer { try? FileManager.default.removeItem(at: bundle) }
            let result = try Run.runSMRunc(["-b", bundle.path, "run-binds-missing"])
            let message = String(decoding: result.stderr, as: UTF8.self)
            #expect(result.status == 1)
            #expect(message.contains("mount /nonexistent-bind-source to /data: no such file or directory"), "\(message)")
            #expect(!FileManager.default.fileExists(atPath: Run.stateRoot + "/run-binds-missing"))
        }
    }
}
