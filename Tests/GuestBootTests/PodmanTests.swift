import Testing
import Foundation
import PodmanSandbox

/// podman 4.3 (Debian's) driving sm-runc as its --runtime, on a local busybox image
/// made without a registry, in a private podman configuration (engines.md §8/§9:
/// no network namespace setup, cgroupfs, file events, ulimits within the host's).
extension VMBootTests {
    @Suite struct PodmanTests {
        static let work = URL(fileURLWithPath: "/tmp/sm-runc-podman-\(getpid())")
        static let image = "localhost/sm-runc-bb"
        /// Its own storage and containers.conf; `--network none` (engines.md §8).
        static let sandbox = PodmanSandbox(directory: work.appendingPathComponent("podman").path, networkNone: true)

        typealias Result = FileOutputCommand.Result

        /// The podman environment: its own storage and containers.conf.
        static func prepare() throws {
            guard FileManager.default.fileExists(atPath: "/usr/bin/podman") else {
                Issue.record("podman is not installed (scripts/setup-deps.sh installs it)")
                throw CancellationError()
            }
            try sandbox.write()
            // The image: a busybox tree imported as a tarball.
            let rootfs = try RunCommandTests.makeBundle(args: ["true"], applets: ["sleep", "ls", "touch", "tty", "id"])
            defer { try? FileManager.default.removeItem(at: rootfs) }
            let tarball = work.appendingPathComponent("bb.tar").path
            let tar = try shell("/bin/tar", ["-C", rootfs.appendingPathComponent("rootfs").path, "-cf", tarball, "."])
            #expect(tar.status == 0, "\(tar.stderr)")
            let imported = try podman(["import", tarball, image])
            #expect(imported.status == 0, "\(imported.stderr)")
        }

        /// Runs a tool with stdin/stdout/stderr in files and waits for it with waitpid
        /// (podman leaves conmon behind; nothing here depends on pipes closing).
        static func shell(_ tool: String, _ arguments: [String], stdin: String? = nil) throws -> Result {
            try FileOutputCommand(scratch: work.path, environment: sandbox.environmentList).run([tool] + arguments, stdin: stdin)
        }

        static func podman(_ arguments: [String], stdin: String? = nil) throws -> Result {
            try shell("/usr/bin/podman", ["--runtime", RunCommandTests.smRunc] + arguments, stdin: stdin)
        }

        @Test func podmanRunsContainersInMicroVMs() throws {
            try requireKVM()
            try Self.prepare()
            defer {
                _ = try? Self.podman(["rm", "-a", "-f"])
                _ = try? Self.shell("/usr/bin/podman", ["system", "reset", "-f"])
                try? FileManager.default.removeItem(at: Self.work)
            }
            // run --rm, and the exit code.
            let hello = try Self.podman(["run", "--rm", Self.image, "echo", "hi from podman"])
            #expect(hello.status == 0 && hello.stdout == "hi from podman\n", "\(hello.stderr)")
            let three = try Self.podman(["run", "--rm", Self.image, "sh", "-c", "exit 3"])
            #expect(three.status == 3, "\(three.stderr)")

            // -i: stdin and its end; -v read-write and read-only; podman's single-file binds.
            // With bind mounts too, the container starts from the snapshot (the runs above
            // made it on first use, if the cache had none): the runtime's --debug log says so.
            let volume = Self.work.appendingPathComponent("volume")
            try FileManager.default.createDirectory(at: volume, withIntermediateDirectories: true)
            try Data("from the host\n".utf8).write(to: volume.appendingPathComponent("host.txt"))
            let runtimeLog = Self.work.appendingPathComponent("runtime-io.log").path
            let io = try Self.podman(["--runtime-flag", "debug", "--runtime-flag", "log=\(runtimeLog)",
                                      "run", "--rm", "-i", "-v", "\(volume.path):/data", "-v", "\(volume.path):/ro:ro", Self.image,
                                      "sh", "-c", "cat; cat /data/host.txt; echo from the guest > /data/guest.txt; touch /ro/x || echo ro-refused; cat /etc/hostname; ls /run/.containerenv"],
                                     stdin: "piped in\n")
            #expect(io.status == 0, "\(io.stderr)")
            // One directory bound twice (rw and ro) stays two mounts: the rw one writes.
            #expect(!io.stderr.contains("can't create"), "\(io.stderr)")
            #expect(io.stdout.hasPrefix("piped in\nfrom the host\nro-refused\n"), "\(io.stdout)")
            #expect(io.stdout.hasSuffix("/run/.containerenv\n"), "\(io.stdout)")
            #expect(try String(contentsOf: volume.appendingPathComponent("guest.txt"), encoding: .utf8) == "from the guest\n")
            let ioLog = (try? String(contentsOfFile: runtimeLog, encoding: .utf8)) ?? ""
            let started = ioLog.split(separator: "\n").first { $0.contains("started from snapshot") }
            #expect(started != nil && !ioLog.contains("booted: no snapshot"),
                    "podman run with bind mounts did not start from the snapshot; runtime log:\n\(ioLog.split(separator: "\n").filter { $0.contains("snapshot") }.joined(separator: "\n"))")
            print("podman run -v: \(started.map(String.init) ?? "no 'started from snapshot' line")")

            // -d, then exec (plain, -i and -t), kill USR1, pause/unpause, stop, rm.
            // The container is up (its traps set) before the execs.
            let detachedLog = Self.work.appendingPathComponent("runtime-d.log").path
            let detached = try Self.podman(["--runtime-flag", "debug", "--runtime-flag", "log=\(detachedLog)",
                                            "run", "-d", "--name", "smd", Self.image, "sh", "-c",
                                            "trap 'echo got USR1' USR1; trap 'exit 0' TERM; echo ready; while :; do sleep 1; done"])
            #expect(detached.status == 0, "\(detached.stderr)")
            let dLog = (try? String(contentsOfFile: detachedLog, encoding: .utf8)) ?? ""
            #expect(dLog.contains("started from snapshot") && !dLog.contains("booted: no snapshot"),
                    "podman run -d did not start from the snapshot; runtime log:\n\(dLog.split(separator: "\n").filter { $0.contains("snapshot") }.joined(separator: "\n"))")
            let deadline = Date().addingTimeInterval(120)
            while Date() < deadline, !(try Self.podman(["logs", "smd"]).stdout.contains("ready")) { usleep(300_000) }
            let exec = try Self.podman(["exec", "smd", "sh", "-c", "echo exec out; exit 4"])
            #expect(exec.status == 4 && exec.stdout == "exec out\n", "\(exec.stderr)")
            let execInput = try Self.podman(["exec", "-i", "smd", "cat"], stdin: "exec input\n")
            #expect(execInput.stdout == "exec input\n", "\(execInput.stderr)")
            let execTTY = try Self.podman(["exec", "-t", "smd", "tty"])
            #expect(execTTY.status == 0 && execTTY.stdout.hasPrefix("/dev/pts/"), "\(execTTY.stdout) \(execTTY.stderr)")
            #expect(try Self.podman(["kill", "--signal", "USR1", "smd"]).status == 0)
            // The trap has run (its line is in the log) before the guest is paused.
            let trapped = Date().addingTimeInterval(60)
            while Date() < trapped, !(try Self.podman(["logs", "smd"]).stdout.contains("got USR1")) { usleep(300_000) }
            #expect(try Self.podman(["pause", "smd"]).status == 0)
            #expect(try Self.podman(["inspect", "--format", "{{.State.Status}}", "smd"]).stdout == "paused\n")
            #expect(try Self.podman(["unpause", "smd"]).status == 0)
            let stop = try Self.podman(["stop", "-t", "10", "smd"])
            #expect(stop.status == 0, "\(stop.stderr)")
            #expect(try Self.podman(["inspect", "--format", "{{.State.ExitCode}}", "smd"]).stdout == "0\n")
            #expect(try Self.podman(["logs", "smd"]).stdout.contains("got USR1"))
            #expect(try Self.podman(["rm", "-f", "smd"]).status == 0)

            // -t: the process on a pty of the guest's (podman's console socket), from the snapshot too.
            let ttyLog = Self.work.appendingPathComponent("runtime-t.log").path
            let tty = try Self.podman(["--runtime-flag", "debug", "--runtime-flag", "log=\(ttyLog)",
                                       "run", "--rm", "-t", Self.image, "sh", "-c", "tty; exit 6"])
            #expect(tty.status == 6 && tty.stdout.hasPrefix("/dev/pts/"), "\(tty.stdout) \(tty.stderr)")
            let tLog = (try? String(contentsOfFile: ttyLog, encoding: .utf8)) ?? ""
            #expect(tLog.contains("started from snapshot") && !tLog.contains("booted: no snapshot"),
                    "podman run -t did not start from the snapshot; runtime log:\n\(tLog.split(separator: "\n").filter { $0.contains("snapshot") }.joined(separator: "\n"))")

            // A program that does not exist: podman's 127.
            let missing = try Self.podman(["run", "--rm", Self.image, "/nonexistent"])
            #expect(missing.status == 127, "\(missing.stderr)")
        }
    }
}
