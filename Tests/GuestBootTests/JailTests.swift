import Testing
import Foundation
import CPosix
import VMM

/// The VMM's jail (`VMM.Jail`, `sm-runc/Host/VMMJail.swift`) on a real container:
/// /proc/<VMM>/root is not the host's `/`, only the served paths are there, mounted
/// nosuid,nodev,noexec; and a guest holding thousands of files cannot take the fds
/// that `exec` and `kill` need. Needs /dev/kvm and root: FAILS where either is missing.
extension VMBootTests {
    @Suite struct JailTests {
        typealias Lifecycle = LifecycleTests
        typealias Run = RunCommandTests

        /// `sm-runc --root <root> <arguments>` under `ulimit -n <files>` (the VMM
        /// inherits it), stdio in files; returns the exit status.
        static func smRunc(_ arguments: [String], root: URL, files: Int? = nil, stdout: URL, stderr: URL) throws -> Int32 {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/bin/sh")
            let limit = files.map { "ulimit -n \($0) && " } ?? ""
            process.arguments = ["-c", limit + "exec \"$0\" \"$@\"", Run.smRunc, "--root", root.path] + arguments
            process.standardInput = FileHandle.nullDevice
            process.standardOutput = try FileHandle(forWritingTo: stdout)
            process.standardError = try FileHandle(forWritingTo: stderr)
            try process.run()
            process.waitUntilExit()
            return process.terminationStatus
        }

        static func read(_ url: URL) -> String { (try? String(contentsOf: url, encoding: .utf8)) ?? "" }

        static func waitFor(_ text: String, in url: URL, seconds: Double = 180) -> Bool {
            let deadline = Date().addingTimeInterval(seconds)
            while Date() < deadline {
                if read(url).contains(text) { return true }
                usleep(200_000)
            }
            return false
        }

        /// The mount points of `pid`'s namespace (mountinfo field 5) with their options (field 6).
        static func mounts(of pid: pid_t) throws -> [(point: String, options: String)] {
            try String(contentsOfFile: "/proc/\(pid)/mountinfo", encoding: .utf8).split(separator: "\n").map { line in
                let fields = line.split(separator: " ")
                return (String(fields[4]), String(fields[5]))
            }
        }

        @Test func theVMMSeesOnlyWhatItServesThroughItsRoot() throws {
            try requireKVM()
            try #require(geteuid() == 0, "the jail needs root")
            #expect(cposix_set_child_subreaper() == 0)
            let hostFile = FileManager.default.temporaryDirectory.appendingPathComponent("sm-runc-jail-file-\(getpid())")
            try Data("file bind\n".utf8).write(to: hostFile)
            defer { try? FileManager.default.removeItem(at: hostFile) }
            let bundle = try Run.makeBundle(
                args: ["sh", "-c", "trap 'echo got TERM; exit 7' TERM; cat /data/f; echo started; while :; do read -t 1 x; done"],
                mounts: [["destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755"]],
                         ["destination": "/data/f", "type": "bind", "source": hostFile.path, "options": ["bind", "ro"]]],
                applets: ["ls", "chmod", "mknod"])
            defer { try? FileManager.default.removeItem(at: bundle) }
            let root = bundle.appendingPathComponent("state")
            let out = bundle.appendingPathComponent("out"), err = bundle.appendingPathComponent("err")
            let log = bundle.appendingPathComponent("log")
            for file in [out, err] { FileManager.default.createFile(atPath: file.path, contents: nil) }
            let pidFile = bundle.appendingPathComponent("pid")
            let create = try Self.smRunc(["--debug", "--log", log.path, "create", "-b", bundle.path, "--pid-file", pidFile.path, "jail"],
                                         root: root, stdout: out, stderr: err)
            defer { _ = try? Lifecycle.smRunc(["delete", "--force", "jail"], root: root) }
            #expect(create == 0, "\(Self.read(err)) \(Self.read(log))")
            let pid = try #require(pid_t(try String(contentsOf: pidFile, encoding: .utf8)))

            // Not the host's root: another directory, and the host's files are not there.
            var jailRoot = stat(), hostRoot = stat()
            #expect(stat("/proc/\(pid)/root/", &jailRoot) == 0 && stat("/", &hostRoot) == 0)
            #expect(jailRoot.st_dev != hostRoot.st_dev || jailRoot.st_ino != hostRoot.st_ino, "/proc/\(pid)/root is the host's /")
            for hostOnly in ["etc/passwd", "usr", "bin", "dev/kvm", "proc/1", "var"] {
                #expect(!FileManager.default.fileExists(atPath: "/proc/\(pid)/root/\(hostOnly)"), "\(hostOnly) is in the jail")
            }
            #expect(FileManager.default.fileExists(atPath: "/proc/\(pid)/root\(bundle.path)/rootfs/bin/busybox"))
            #expect(!FileManager.default.fileExists(atPath: "/proc/\(pid)/root\(bundle.path)/config.json"), "the bundle beyond its rootfs is in the jail")
            // Only the served paths: the rootfs, the bind staging directory (with the file
            // bind below it), the agent's directory, the state directory, the log file,
            // /proc/self/fd; each nosuid,nodev,noexec from the VMM's view.
            let mounts = try Self.mounts(of: pid)
            let state = root.path + "/jail"
            let allowed = ["/", bundle.path + "/rootfs", state, state + "/binds", state + "/binds/0", log.path, "/proc/self/fd",
                           GuestArtifacts.guestRoot().map { URL(fileURLWithPath: $0).resolvingSymlinksInPath().path } ?? ""]
            for mount in mounts {
                let resolved = URL(fileURLWithPath: mount.point).resolvingSymlinksInPath().path
                #expect(allowed.contains(mount.point) || allowed.contains(resolved), "unexpected mount \(mount.point) in the jail")
                for option in ["nosuid", "nodev", "noexec"] {
                    #expect(mount.options.split(separator: ",").contains(Substring(option)), "\(mount.point): \(mount.options)")
                }
            }
            #expect(mounts.contains { $0.point == "/" && $0.options.hasPrefix("ro") })
            #expect(mounts.contains { $0.point == state + "/binds/0" && $0.options.hasPrefix("ro") }, "\(mounts)")
            #expect(!FileManager.default.fileExists(atPath: state + "/jail"), "the jail's staging directory is left on the host")
            // A tmpfs at /dev and no CAP_MKNOD or CAP_FSETID in the spec: the VMM keeps neither.
            Lifecycle.expectConfined(pid, granted: [])

            // The control socket (made in the jail) and the vsock host sockets work.
            let start = try Lifecycle.smRunc(["start", "jail"], root: root)
            #expect(start.status == 0, "\(start.stderr)")
            #expect(Self.waitFor("started", in: out), "\(Self.read(out)) \(Self.read(err))")
            #expect(Self.read(out).hasPrefix("file bind\n"))
            // The spec grants neither CAP_FSETID nor CAP_MKNOD: a setuid file and a device
            // node (254:0, the host disk's numbers here) are refused.
            let exec = try Lifecycle.smRunc(["exec", "jail", "sh", "-c", "echo exec in the jail; ls /data; echo x > /tmp/s; " +
                                             "chmod 4755 /tmp/s || echo setuid refused; mknod /tmp/disk b 254 0 || echo device refused"], root: root)
            #expect(exec.status == 0 && exec.stdout == "exec in the jail\nf\nsetuid refused\ndevice refused\n", "\(exec.stdout) \(exec.stderr)")
            var made = stat()
            #expect(lstat(bundle.path + "/rootfs/tmp/s", &made) == 0 && made.st_mode & (S_ISUID | S_ISGID) == 0)
            #expect(lstat(bundle.path + "/rootfs/tmp/disk", &made) != 0, "a device node made by the guest is on the host")
            let kill = try Lifecycle.smRunc(["kill", "jail", "TERM"], root: root)
            #expect(kill.status == 0, "\(kill.stderr)")
            let status = try #require(Lifecycle.reap(pid))
            #expect(status & 0x7f == 0 && (status >> 8) & 0xff == 7, "VMM wait status \(status)")
            #expect(Self.read(out).hasSuffix("got TERM\n"))
            #expect(try Lifecycle.smRunc(["delete", "jail"], root: root).status == 0)
            #expect(try FileManager.default.contentsOfDirectory(atPath: root.path).isEmpty)
        }

        /// The guest makes 2000 files on its rootfs (each one it knows costs the file
        /// server a host fd until FORGET) and keeps them open (`tail -f`), with the VMM's
        /// RLIMIT_NOFILE at 1024: the file server refuses what passes its cap (EMFILE/ENFILE
        /// in the guest) and `exec` and `kill TERM` still work.
        @Test func aGuestHoldingTwoThousandFilesLeavesExecAndKillWorking() throws {
            try requireKVM()
            #expect(cposix_set_child_subreaper() == 0)
            let script = """
                trap 'echo got TERM; exit 7' TERM
                i=0; while [ $i -lt 2000 ]; do true > f$i; i=$((i+1)); done
                tail -f f* > /tmp/tail.out 2> /tmp/tail.err &
                echo opening
                while :; do read -t 1 x; done
                """
            let bundle = try Run.makeBundle(args: ["sh", "-c", script], applets: ["tail", "ls", "wc"])
            defer { try? FileManager.default.removeItem(at: bundle) }
            let root = bundle.appendingPathComponent("state")
            let out = bundle.appendingPathComponent("out"), err = bundle.appendingPathComponent("err")
            for file in [out, err] { FileManager.default.createFile(atPath: file.path, contents: nil) }
            let pidFile = bundle.appendingPathComponent("pid")
            let create = try Self.smRunc(["create", "-b", bundle.path, "--pid-file", pidFile.path, "files"],
                                         root: root, files: 1024, stdout: out, stderr: err)
            defer { _ = try? Lifecycle.smRunc(["delete", "--force", "files"], root: root) }
            #expect(create == 0, "\(Self.read(err))")
            let pid = try #require(pid_t(try String(contentsOf: pidFile, encoding: .utf8)))
            #expect(try Lifecycle.smRunc(["start", "files"], root: root).status == 0)
            #expect(Self.waitFor("opening", in: out, seconds: 600), "\(Self.read(out)) \(Self.read(err))")
            // Until tail has opened what it can: the VMM's fd count stops growing.
            var count = 0, stableSince = Date()
            let deadline = Date().addingTimeInterval(300)
            while Date() < deadline, Date().timeIntervalSince(stableSince) < 5 {
                let now = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd"))?.count ?? 0
                if now != count { count = now; stableSince = Date() }
                usleep(250_000)
            }
            #expect(count > 500 && count < 1024, "the VMM holds \(count) fds")
            // The guest met the cap (making the files or opening them).
            let errors = Self.read(err) + ((try? String(contentsOfFile: bundle.path + "/rootfs/tmp/tail.err", encoding: .utf8)) ?? "")
            #expect(errors.contains("Too many open files") || errors.contains("many open files in system"), "\(errors.prefix(300))")

            let exec = try Lifecycle.smRunc(["exec", "files", "sh", "-c", "echo exec ok"], root: root)
            #expect(exec.status == 0 && exec.stdout == "exec ok\n", "\(exec.stdout) \(exec.stderr)")
            let kill = try Lifecycle.smRunc(["kill", "files", "TERM"], root: root)
            #expect(kill.status == 0, "\(kill.stderr)")
            let status = try #require(Lifecycle.reap(pid))
            #expect(status & 0x7f == 0 && (status >> 8) & 0xff == 7, "VMM wait status \(status)")
            #expect(Self.read(out).hasSuffix("got TERM\n"), "\(Self.read(out))")
            #expect(try Lifecycle.smRunc(["delete", "files"], root: root).status == 0)
        }
    }
}
