import Testing
import Foundation
import CPosix
import VMM

/// The runc contract with a detached VMM process: create → state → start → kill →
/// state → delete, the pid in --pid-file being the VMM (reaped here, as conmon and the
/// containerd shim do as subreapers), stdio byte-exact in files, and bad input.
extension VMBootTests {
    @Suite struct LifecycleTests {
        typealias Run = RunCommandTests

        struct Call { var status: Int32; var stdout: String; var stderr: String }

        /// How a container's microVM starts: booted (`SM_RUNC_SNAPSHOT=off`) or restored
        /// from the snapshot cache (the default, made on first use). The runc contract
        /// must hold the same on both.
        enum StartPath: String, Sendable, CaseIterable, CustomTestStringConvertible {
            case boot, snapshot
            var testDescription: String { rawValue }
        }

        /// The start path `smRunc` asks for (set per test with `withValue`).
        @TaskLocal static var startPath: StartPath = .snapshot

        /// Runs `sm-runc --root <root> <arguments>` with stdio from/to files.
        static func smRunc(_ arguments: [String], root: URL, stdout: URL? = nil, stderr: URL? = nil,
                           environment: [String: String]? = nil) throws -> Call {
            let directory = FileManager.default.temporaryDirectory
            let out = stdout ?? directory.appendingPathComponent("lc-out-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
            let err = stderr ?? directory.appendingPathComponent("lc-err-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
            if stdout == nil { FileManager.default.createFile(atPath: out.path, contents: nil) }
            if stderr == nil { FileManager.default.createFile(atPath: err.path, contents: nil) }
            defer {
                if stdout == nil { try? FileManager.default.removeItem(at: out) }
                if stderr == nil { try? FileManager.default.removeItem(at: err) }
            }
            let process = Process()
            process.executableURL = URL(fileURLWithPath: Run.smRunc)
            process.arguments = ["--root", root.path] + arguments
            var environment = environment ?? [:]
            if Self.startPath == .boot, environment["SM_RUNC_SNAPSHOT"] == nil { environment["SM_RUNC_SNAPSHOT"] = "off" }
            if !environment.isEmpty { process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
            process.standardInput = FileHandle.nullDevice
            process.standardOutput = try FileHandle(forWritingTo: out)
            process.standardError = try FileHandle(forWritingTo: err)
            try process.run()
            process.waitUntilExit()
            return Call(status: process.terminationStatus,
                        stdout: stdout == nil ? (try String(contentsOf: out, encoding: .utf8)) : "",
                        stderr: stderr == nil ? (try String(contentsOf: err, encoding: .utf8)) : "")
        }

        static func status(_ id: String, root: URL) throws -> String? {
            let call = try smRunc(["state", id], root: root)
            guard call.status == 0, let object = try JSONSerialization.jsonObject(with: Data(call.stdout.utf8)) as? [String: Any] else {
                return nil
            }
            return object["status"] as? String
        }

        /// Polls `state` until it reports `want` (the guest is slow here).
        static func awaitStatus(_ want: String, _ id: String, root: URL, seconds: Double = 120) throws -> String? {
            let deadline = Date().addingTimeInterval(seconds)
            var last: String?
            while Date() < deadline {
                last = try status(id, root: root)
                if last == want { return last }
                usleep(250_000)
            }
            return last
        }

        /// The VMM's wait status, reaped by us as subreaper (what engines see).
        static func reap(_ pid: pid_t) -> Int32? {
            var status: Int32 = 0
            let deadline = Date().addingTimeInterval(120)
            while Date() < deadline {
                let rc = waitpid(pid, &status, WNOHANG)
                if rc == pid { return status }
                if rc < 0 && errno != EINTR { return nil }
                usleep(100_000)
            }
            return nil
        }

        /// Every thread of the VMM process: seccomp filter mode (2), no_new_privs, and
        /// exactly the file server's capabilities in the effective, permitted and
        /// bounding sets: CHOWN, DAC_OVERRIDE, FOWNER, and of FSETID and MKNOD those the
        /// spec's bounding set grants (`granted`). `makeBundle`'s specs mount no tmpfs at
        /// /dev, so the agent makes the spec's devices on the rootfs share and the VMM
        /// keeps MKNOD (`VMMCapabilities`): hence the default.
        static func expectConfined(_ pid: pid_t, granted: [String] = ["CAP_MKNOD"], sourceLocation: SourceLocation = #_sourceLocation) {
            let kept = Privileges.fileServerCapabilities.filter { ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER"].contains($0.name) || granted.contains($0.name) }
            let expected = String(format: "%016llx", kept.reduce(UInt64(0)) { $0 | (1 << UInt64($1.cap)) })
            let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
            #expect(tasks.count >= 3, "threads of \(pid): \(tasks)", sourceLocation: sourceLocation)
            for task in tasks {
                guard let status = try? String(contentsOfFile: "/proc/\(pid)/task/\(task)/status", encoding: .utf8) else { continue }
                var fields: [String: String] = [:]
                for line in status.split(separator: "\n") {
                    let parts = line.split(separator: ":", maxSplits: 1)
                    if parts.count == 2 { fields[String(parts[0])] = parts[1].trimmingCharacters(in: .whitespaces) }
                }
                let name = fields["Name"] ?? task
                #expect(fields["Seccomp"] == "2", "\(name): Seccomp \(fields["Seccomp"] ?? "?")", sourceLocation: sourceLocation)
                #expect(fields["NoNewPrivs"] == "1", "\(name): NoNewPrivs", sourceLocation: sourceLocation)
                for set in ["CapEff", "CapPrm", "CapBnd"] {
                    #expect(fields[set] == expected, "\(name): \(set) \(fields[set] ?? "?")", sourceLocation: sourceLocation)
                }
            }
        }

        @Test(arguments: StartPath.allCases) func createStartKillDeleteWithStdioInFiles(_ path: StartPath) throws {
            try Self.$startPath.withValue(path) { try createStartKillDelete() }
        }

        func createStartKillDelete() throws {
            try requireKVM()
            #expect(cposix_set_child_subreaper() == 0)
            // The VMM joins linux.cgroupsPath with the engine's limits (podman's: devices
            // deny-all, a pids limit), and the cgroup goes with the container. The
            // annotation that once switched the VMM's confinement off is ignored: only
            // the host may (`expectConfined` below).
            let cgroupParent = "/sm-runc-lifecycle-\(getpid())"
            let bundle = try Run.makeBundle(args: ["sh", "-c", "trap 'printf \"got TERM\\\\000\\\\377\"; echo bye >&2; exit 7' TERM; echo started; while :; do read -t 1 x; done"],
                                            linux: ["cgroupsPath": cgroupParent + "/lc",
                                                    "resources": ["devices": [["allow": false, "access": "rwm"]], "pids": ["limit": 512]]],
                                            annotations: ["run.sm-runc.vmm-seccomp": "off"])
            defer {
                try? FileManager.default.removeItem(at: bundle)
                for hierarchy in (try? FileManager.default.contentsOfDirectory(atPath: "/sys/fs/cgroup")) ?? [] { rmdir("/sys/fs/cgroup/\(hierarchy)\(cgroupParent)") }
                rmdir("/sys/fs/cgroup\(cgroupParent)")
            }
            let root = bundle.appendingPathComponent("state")
            let out = bundle.appendingPathComponent("out"), err = bundle.appendingPathComponent("err")
            FileManager.default.createFile(atPath: out.path, contents: nil)
            FileManager.default.createFile(atPath: err.path, contents: nil)
            let pidFile = bundle.appendingPathComponent("pid")

            let create = try Self.smRunc(["create", "--bundle", bundle.path, "--pid-file", pidFile.path, "lc"],
                                         root: root, stdout: out, stderr: err)
            #expect(create.status == 0, "\((try? String(contentsOf: err, encoding: .utf8)) ?? "")")
            let pidText = try String(contentsOf: pidFile, encoding: .utf8)
            #expect(!pidText.hasSuffix("\n"))
            let pid = try #require(pid_t(pidText))
            #expect(try Self.status("lc", root: root) == "created")
            let state = try Self.smRunc(["state", "lc"], root: root)
            let document = try #require(try JSONSerialization.jsonObject(with: Data(state.stdout.utf8)) as? [String: Any])
            #expect(document["id"] as? String == "lc")
            #expect(document["pid"] as? Int == Int(pid))
            #expect(document["bundle"] as? String == bundle.path)
            Self.expectConfined(pid)
            let cgroups = try String(contentsOfFile: "/proc/\(pid)/cgroup", encoding: .utf8).split(separator: "\n")
            #expect(!cgroups.isEmpty && cgroups.allSatisfy { $0.hasSuffix(":\(cgroupParent)/lc") }, "\(cgroups)")
            let v1 = FileManager.default.fileExists(atPath: "/sys/fs/cgroup/pids/")
            let cgroupDirectory = v1 ? "/sys/fs/cgroup/pids\(cgroupParent)/lc" : "/sys/fs/cgroup\(cgroupParent)/lc"
            #expect(try String(contentsOfFile: cgroupDirectory + "/pids.max", encoding: .utf8) == "512\n")
            if v1 {
                let devices = try String(contentsOfFile: "/sys/fs/cgroup/devices\(cgroupParent)/lc/devices.list", encoding: .utf8)
                #expect(devices.contains("c 10:232 rwm") && !devices.contains("a *:* rwm"), "\(devices)")
            }
            // Before start, process.args has had no effect.
            #expect(try Data(contentsOf: out).isEmpty)
            #expect(try Self.smRunc(["list"], root: root).stdout.contains("lc          \(pid)"))

            let start = try Self.smRunc(["start", "lc"], root: root)
            #expect(start.status == 0, "\(start.stderr)")
            #expect(try Self.status("lc", root: root) == "running")
            Self.expectConfined(pid)
            let again = try Self.smRunc(["start", "lc"], root: root)
            #expect(again.status == 1 && again.stderr.contains("cannot start an already running container"))
            let busy = try Self.smRunc(["delete", "lc"], root: root)
            #expect(busy.status == 1 && busy.stderr.contains("cannot delete container lc that is not stopped: running"))

            // Wait for the process to be in its loop, then TERM it.
            let deadline = Date().addingTimeInterval(120)
            while Date() < deadline, !((try? String(contentsOf: out, encoding: .utf8)) ?? "").contains("started") { usleep(200_000) }
            let kill = try Self.smRunc(["kill", "lc", "TERM"], root: root)
            #expect(kill.status == 0, "\(kill.stderr)")
            #expect(try Self.awaitStatus("stopped", "lc", root: root) == "stopped")
            let status = try #require(Self.reap(pid))
            #expect(status & 0x7f == 0 && (status >> 8) & 0xff == 7, "VMM wait status \(status)")
            #expect(Array(try Data(contentsOf: out)) == Array("started\ngot TERM".utf8) + [0, 255])
            #expect(try String(contentsOf: err, encoding: .utf8) == "bye\n")

            let late = try Self.smRunc(["kill", "lc", "KILL"], root: root)
            #expect(late.status == 1 && late.stderr.contains("container not running"))
            #expect(try Self.smRunc(["delete", "lc"], root: root).status == 0)
            let gone = try Self.smRunc(["state", "lc"], root: root)
            #expect(gone.status == 1 && gone.stderr.contains("container does not exist"))
            #expect(try Self.smRunc(["delete", "--force", "lc"], root: root).status == 0)
            #expect(try FileManager.default.contentsOfDirectory(atPath: root.path).isEmpty)
            #expect(!FileManager.default.fileExists(atPath: cgroupDirectory), "the container's cgroup outlived it")
        }

        @Test(arguments: StartPath.allCases) func killOfACreatedContainerStopsItAndDeleteCleansUp(_ path: StartPath) throws {
            try Self.$startPath.withValue(path) { try killOfACreatedContainer() }
        }

        func killOfACreatedContainer() throws {
            try requireKVM()
            #expect(cposix_set_child_subreaper() == 0)
            let bundle = try Run.makeBundle(args: ["sh", "-c", "echo must-not-run"])
            defer { try? FileManager.default.removeItem(at: bundle) }
            let root = bundle.appendingPathComponent("state")
            let out = bundle.appendingPathComponent("out")
            FileManager.default.createFile(atPath: out.path, contents: nil)
            let pidFile = bundle.appendingPathComponent("pid")
            let log = bundle.appendingPathComponent("log.json")
            let create = try Self.smRunc(["--debug", "--log", log.path, "--log-format", "json",
                                          "create", "-b", bundle.path, "--pid-file", pidFile.path, "lc-kill"], root: root, stdout: out)
            #expect(create.status == 0, "\(create.stderr)")
            // The path taken, as --debug reports it.
            let logged = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
            switch Self.startPath {
            case .boot: #expect(logged.contains("booted: no snapshot (SM_RUNC_SNAPSHOT=off)"), "log:\n\(logged)")
            case .snapshot: #expect(logged.contains("started from snapshot "), "log:\n\(logged)")
            }
            let pid = try #require(pid_t(try String(contentsOf: pidFile, encoding: .utf8)))
            let duplicate = try Self.smRunc(["create", "-b", bundle.path, "lc-kill"], root: root)
            #expect(duplicate.status == 1 && duplicate.stderr.contains("container with given ID already exists"))
            #expect(try Self.smRunc(["kill", "lc-kill", "9"], root: root).status == 0)
            #expect(try Self.awaitStatus("stopped", "lc-kill", root: root) == "stopped")
            let status = try #require(Self.reap(pid))
            #expect(status & 0x7f == SIGKILL, "VMM wait status \(status)")
            #expect(try Self.smRunc(["delete", "lc-kill"], root: root).status == 0)
            #expect(try Data(contentsOf: out).isEmpty)
        }

        @Test(arguments: StartPath.allCases) func runDetachLeavesARunningContainer(_ path: StartPath) throws {
            try Self.$startPath.withValue(path) { try runDetach() }
        }

        func runDetach() throws {
            try requireKVM()
            #expect(cposix_set_child_subreaper() == 0)
            let bundle = try Run.makeBundle(args: ["sh", "-c", "echo detached; while :; do read -t 1 x; done"])
            defer { try? FileManager.default.removeItem(at: bundle) }
            let root = bundle.appendingPathComponent("state")
            let out = bundle.appendingPathComponent("out")
            FileManager.default.createFile(atPath: out.path, contents: nil)
            let pidFile = bundle.appendingPathComponent("pid")
            let run = try Self.smRunc(["run", "-d", "-b", bundle.path, "--pid-file", pidFile.path, "lc-detach"], root: root, stdout: out)
            #expect(run.status == 0, "\(run.stderr)")
            #expect(try Self.status("lc-detach", root: root) == "running")
            let pid = try #require(pid_t(try String(contentsOf: pidFile, encoding: .utf8)))
            let deadline = Date().addingTimeInterval(120)
            while Date() < deadline, !((try? String(contentsOf: out, encoding: .utf8)) ?? "").contains("detached") { usleep(200_000) }
            #expect(try Self.smRunc(["delete", "--force", "lc-detach"], root: root).status == 0)
            #expect(Self.reap(pid).map { $0 & 0x7f } == SIGKILL)
            #expect(try String(contentsOf: out, encoding: .utf8).contains("detached"))
            #expect(try FileManager.default.contentsOfDirectory(atPath: root.path).isEmpty)
        }

        /// Each bad input: its message in runc's words, exit 1, nothing left behind.
        @Test func badInputGetsRuncsWordsAndLeavesNothing() throws {
            let bundle = try Run.makeBundle(args: ["true"])
            defer { try? FileManager.default.removeItem(at: bundle) }
            let root = bundle.appendingPathComponent("state")
            func expectError(_ arguments: [String], _ text: String, environment: [String: String]? = nil,
                             sourceLocation: SourceLocation = #_sourceLocation) throws {
                let call = try Self.smRunc(arguments, root: root, environment: environment)
                #expect(call.status == 1, "\(arguments)", sourceLocation: sourceLocation)
                #expect(call.stderr.contains(text), "\(arguments): \(call.stderr)", sourceLocation: sourceLocation)
                let left = (try? FileManager.default.contentsOfDirectory(atPath: root.path)) ?? []
                #expect(left.isEmpty, "\(arguments) left \(left)", sourceLocation: sourceLocation)
            }
            for command in [["state"], ["start"], ["kill"], ["delete"]] {
                try expectError(command + ["nosuch"], "container does not exist")
            }
            #expect(try Self.smRunc(["delete", "--force", "nosuch"], root: root).status == 0)
            try expectError(["create", "-b", bundle.path, "../escape"], "invalid container ID format")
            try expectError(["create", "-b", "/nonexistent-bundle", "x"], "/nonexistent-bundle/config.json: no such file or directory")
            try expectError(["kill", "nosuch", "SIGNOPE"], "unknown signal")
            try expectError(["start"], "Missing expected argument")

            let config = bundle.appendingPathComponent("config.json")
            let good = try Data(contentsOf: config)
            try Data("{\"ociVersion\": \"1.2.0\", \"process\": ".utf8).write(to: config)
            try expectError(["create", "-b", bundle.path, "x"], "config.json")
            try good.write(to: config)
            try FileManager.default.moveItem(at: bundle.appendingPathComponent("rootfs"), to: bundle.appendingPathComponent("rootfs.away"))
            try expectError(["create", "-b", bundle.path, "x"], "rootfs: no such file or directory")
            try FileManager.default.moveItem(at: bundle.appendingPathComponent("rootfs.away"), to: bundle.appendingPathComponent("rootfs"))

            // A memory limit the microVM cannot live in (guest RAM + the VMM's own).
            let small = try Run.makeBundle(args: ["true"], linux: ["resources": ["memory": ["limit": 40 << 20]]])
            defer { try? FileManager.default.removeItem(at: small) }
            try expectError(["create", "-b", small.path, "x"], "linux.resources.memory.limit: 41943040 bytes is below what this microVM needs")
            // Guest sizes out of range, by annotation.
            let sizes: [([String: String], String)] = [
                (["io.sm-runc.memory_mib": "lots"], "lots\\\" is not a number of MiB from 32 to"),
                (["io.sm-runc.memory_mib": "16"], "16\\\" is not a number of MiB from 32 to"),
                (["io.sm-runc.vcpus": "0"], "0\\\" is not a number of vCPUs (1 or more)"),
                (["io.sm-runc.vcpus": "4096"], "annotation io.sm-runc.vcpus: 4096 vCPUs, this host gives a microVM at most"),
            ]
            for (annotations, text) in sizes {
                let sized = try Run.makeBundle(args: ["true"], annotations: annotations)
                defer { try? FileManager.default.removeItem(at: sized) }
                try expectError(["create", "-b", sized.path, "x"], text)
            }
            let tooBig = try Run.makeBundle(args: ["true"], linux: ["resources": ["memory": ["limit": 256 << 20]]],
                                            annotations: ["io.sm-runc.memory_mib": "250"])
            defer { try? FileManager.default.removeItem(at: tooBig) }
            try expectError(["create", "-b", tooBig.path, "x"], "250 MiB of guest RAM + 16 MiB for the VMM exceed linux.resources.memory.limit")

            // A kernel that cannot boot: create fails, the VMM is reaped, the state removed.
            let bogus = bundle.appendingPathComponent("bogus-vmlinux")
            try Data("not an ELF kernel".utf8).write(to: bogus)
            try expectError(["create", "-b", bundle.path, "x"], "vmlinux", environment: ["SM_RUNC_KERNEL": bogus.path])

            // With --log-format json, one JSON object per line with level, msg and time.
            let log = bundle.appendingPathComponent("log.json")
            _ = try Self.smRunc(["--log", log.path, "--log-format=json", "state", "nosuch"], root: root)
            let lines = try String(contentsOf: log, encoding: .utf8).split(separator: "\n")
            #expect(lines.count == 1)
            let entry = try #require(try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as? [String: String])
            #expect(entry["level"] == "error" && entry["msg"] == "container does not exist" && entry["time"] != nil)
        }
    }
}

extension VMBootTests.LifecycleTests {
    /// process.terminal with --console-socket: the pty master arrives as one SCM_RIGHTS
    /// message, the process has a terminal, input and a window size reach it.
    @Test func aTerminalThroughAConsoleSocket() throws {
        try requireKVM()
        #expect(cposix_set_child_subreaper() == 0)
        let bundle = try Run.makeBundle(
            args: ["sh", "-c", "tty; stty size; read line; echo \"got $line\"; exit 4"],
            process: ["terminal": true],
            mounts: [["destination": "/dev/pts", "type": "devpts", "source": "devpts",
                      "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]]],
            applets: ["tty", "stty"])
        defer { try? FileManager.default.removeItem(at: bundle) }
        let root = bundle.appendingPathComponent("state")
        let socketPath = bundle.appendingPathComponent("console.sock").path
        let listener = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in for (i, b) in socketPath.utf8.enumerated() { raw[i] = b } }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        #expect(bound == 0 && listen(listener, 1) == 0)
        defer { close(listener) }
        final class Box: @unchecked Sendable { var fd: Int32 = -1 }
        let master = Box()
        let received = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            let connection = accept(listener, nil, nil)
            if connection >= 0 { master.fd = cposix_receive_fd(connection); close(connection) }
            received.signal()
        }
        let pidFile = bundle.appendingPathComponent("pid")
        let create = try Self.smRunc(["create", "-b", bundle.path, "--console-socket", socketPath, "--pid-file", pidFile.path, "lc-tty"], root: root)
        #expect(create.status == 0, "\(create.stderr)")
        #expect(received.wait(timeout: .now() + 10) == .success)
        try #require(master.fd >= 0)
        defer { close(master.fd) }
        let pid = try #require(pid_t(try String(contentsOf: pidFile, encoding: .utf8)))
        #expect(cposix_set_window_size(master.fd, 30, 100) == 0)      // as the engine resizes
        #expect(try Self.smRunc(["start", "lc-tty"], root: root).status == 0)

        var output: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        var typed = false
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline {
            var fds = [pollfd(fd: master.fd, events: Int16(POLLIN), revents: 0)]
            guard poll(&fds, 1, 500) >= 0 else { break }
            if fds[0].revents != 0 {
                let n = buffer.withUnsafeMutableBytes { read(master.fd, $0.baseAddress, $0.count) }
                if n <= 0 { break }                                  // EIO: every slave end closed
                output += buffer[0..<n]
            }
            if !typed, String(decoding: output, as: UTF8.self).contains("30 100") {
                _ = Array("hello\r".utf8).withUnsafeBytes { write(master.fd, $0.baseAddress, $0.count) }
                typed = true
            }
        }
        let text = String(decoding: output, as: UTF8.self)
        #expect(text.contains("/dev/pts/0\r\n"), "\(text)")
        #expect(text.contains("30 100\r\n"), "\(text)")
        #expect(text.contains("got hello\r\n"), "\(text)")
        let status = try #require(Self.reap(pid))
        #expect(status & 0x7f == 0 && (status >> 8) & 0xff == 4, "VMM wait status \(status)")
        #expect(try Self.smRunc(["delete", "lc-tty"], root: root).status == 0)
    }
}

extension VMBootTests.LifecycleTests {
    /// Hooks in the spec's order: prestart, createRuntime and poststart, poststop on the
    /// host; createContainer and startContainer in the guest, resolved in the container's
    /// root. Each gets the state JSON on stdin.
    @Test func hooksRunInOrderWhereTheSpecSays() throws {
        try requireKVM()
        #expect(cposix_set_child_subreaper() == 0)
        let placeholder = try Run.makeBundle(args: ["sh", "-c", "exit 0"])
        defer { try? FileManager.default.removeItem(at: placeholder) }
        let order = placeholder.appendingPathComponent("rootfs/tmp/order").path
        func host(_ name: String) -> [String: Any] {
            ["path": "/bin/sh", "args": ["sh", "-c", "echo \(name) >> \(order); cat > \(placeholder.path)/\(name).json"]]
        }
        func guest(_ name: String) -> [String: Any] {
            ["path": "/bin/sh", "args": ["sh", "-c", "echo \(name) >> /tmp/order; cat > /tmp/\(name).json"]]
        }
        let hooks: [String: Any] = [
            "prestart": [host("prestart")], "createRuntime": [host("createRuntime")],
            "createContainer": [guest("createContainer")], "startContainer": [guest("startContainer")],
            "poststart": [host("poststart")], "poststop": [host("poststop")],
        ]
        // The same bundle, with hooks in config.json.
        let configURL = placeholder.appendingPathComponent("config.json")
        var config = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: configURL)) as? [String: Any])
        config["hooks"] = hooks
        config["annotations"] = ["org.example.hook": "yes"]
        try JSONSerialization.data(withJSONObject: config).write(to: configURL)
        let root = placeholder.appendingPathComponent("state")
        let pidFile = placeholder.appendingPathComponent("pid")

        let create = try Self.smRunc(["create", "-b", placeholder.path, "--pid-file", pidFile.path, "lc-hooks"], root: root)
        #expect(create.status == 0, "\(create.stderr)")
        let pid = try #require(pid_t(try String(contentsOf: pidFile, encoding: .utf8)))
        #expect(try Self.smRunc(["start", "lc-hooks"], root: root).status == 0)
        _ = Self.reap(pid)
        #expect(try Self.smRunc(["delete", "lc-hooks"], root: root).status == 0)

        #expect(try String(contentsOfFile: order, encoding: .utf8)
                == "prestart\ncreateRuntime\ncreateContainer\nstartContainer\npoststart\npoststop\n")
        let runtime = try #require(try JSONSerialization.jsonObject(
            with: Data(contentsOf: placeholder.appendingPathComponent("createRuntime.json"))) as? [String: Any])
        #expect(runtime["id"] as? String == "lc-hooks")
        #expect(runtime["pid"] as? Int == Int(pid))
        #expect(runtime["bundle"] as? String == placeholder.path)
        #expect((runtime["annotations"] as? [String: String])?["org.example.hook"] == "yes")
        // Each hook's status as the runtime-spec's lifecycle says: the create-time ones
        // after the create operation (created), startContainer before the program runs
        // (created), poststart after it (running), poststop at the end (stopped).
        for (name, status) in [("prestart", "created"), ("createRuntime", "created"), ("poststart", "running")] {
            let state = try #require(try JSONSerialization.jsonObject(
                with: Data(contentsOf: placeholder.appendingPathComponent("\(name).json"))) as? [String: Any])
            #expect(state["status"] as? String == status, "\(name): \(state)")
        }
        for name in ["createContainer", "startContainer"] {
            let state = try #require(try JSONSerialization.jsonObject(
                with: Data(contentsOf: placeholder.appendingPathComponent("rootfs/tmp/\(name).json"))) as? [String: Any])
            #expect(state["status"] as? String == "created", "\(name): \(state)")
        }
        let inGuest = try #require(try JSONSerialization.jsonObject(
            with: Data(contentsOf: placeholder.appendingPathComponent("rootfs/tmp/startContainer.json"))) as? [String: Any])
        #expect(inGuest["id"] as? String == "lc-hooks")
        let poststop = try #require(try JSONSerialization.jsonObject(
            with: Data(contentsOf: placeholder.appendingPathComponent("poststop.json"))) as? [String: Any])
        #expect(poststop["status"] as? String == "stopped")
    }
}

extension VMBootTests.LifecycleTests {
    /// exec in a running container: stdio byte for byte (stdin too), the exit code,
    /// a detached exec whose proxy (the --pid-file pid) exits with the process's
    /// status, and errors for a missing program and a stopped container.
    @Test func execRunsMoreProcessesInTheRunningContainer() throws {
        try requireKVM()
        #expect(cposix_set_child_subreaper() == 0)
        let bundle = try Run.makeBundle(args: ["sh", "-c", "echo up; while :; do echo tick; sleep 1; done"],
                                        linux: ["devices": [["type": "c", "path": "/dev/fuse", "major": 10, "minor": 229, "fileMode": 0o600]]],
                                        applets: ["sleep", "chmod", "ls"])
        defer { try? FileManager.default.removeItem(at: bundle) }
        let root = bundle.appendingPathComponent("state")
        let out = bundle.appendingPathComponent("out")
        FileManager.default.createFile(atPath: out.path, contents: nil)
        let run = try Self.smRunc(["run", "-d", "-b", bundle.path, "lc-exec"], root: root, stdout: out)
        #expect(run.status == 0, "\(run.stderr)")
        defer { _ = try? Self.smRunc(["delete", "--force", "lc-exec"], root: root) }

        // Foreground exec with stdin from a file.
        let input = bundle.appendingPathComponent("input")
        try Data("typed\u{1}\n".utf8).write(to: input)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Run.smRunc)
        process.arguments = ["--root", root.path, "exec", "lc-exec", "sh", "-c", "echo out; echo err >&2; cat; exit 5"]
        let execOut = bundle.appendingPathComponent("exec-out"), execErr = bundle.appendingPathComponent("exec-err")
        FileManager.default.createFile(atPath: execOut.path, contents: nil)
        FileManager.default.createFile(atPath: execErr.path, contents: nil)
        process.standardInput = try FileHandle(forReadingFrom: input)
        process.standardOutput = try FileHandle(forWritingTo: execOut)
        process.standardError = try FileHandle(forWritingTo: execErr)
        try process.run()
        process.waitUntilExit()
        #expect(process.terminationStatus == 5, "\((try? String(contentsOf: execErr, encoding: .utf8)) ?? "")")
        #expect(try String(contentsOf: execOut, encoding: .utf8) == "out\ntyped\u{1}\n")
        #expect(try String(contentsOf: execErr, encoding: .utf8) == "err\n")

        // runc's /dev: the default devices, the links, and linux.devices.
        let madeDevices = try Self.smRunc(["exec", "lc-exec", "sh", "-c",
            "for d in null zero full random urandom tty fuse; do test -c /dev/$d || echo no-$d; done; " +
            "test -L /dev/fd && test -L /dev/stdin && test -L /dev/ptmx || echo no-links; echo x > /dev/null; test -s /dev/null && echo null-is-a-file; " +
            // chmod through the virtio-fs server (its seccomp list allows fchmodat, not chmod).
            "echo > /tmp/mode; chmod 640 /tmp/mode; ls -l /tmp/mode | grep -q '^-rw-r-----' || echo chmod-failed; echo checked"], root: root)
        #expect(madeDevices.status == 0 && madeDevices.stdout == "checked\n", "\(madeDevices.stdout) \(madeDevices.stderr)")

        // Detached: the proxy's pid is in --pid-file and carries the exit status.
        let pidFile = bundle.appendingPathComponent("exec.pid")
        let detached = try Self.smRunc(["exec", "--detach", "--pid-file", pidFile.path, "lc-exec", "sh", "-c", "sleep 1; exit 4"], root: root)
        #expect(detached.status == 0, "\(detached.stderr)")
        let proxy = try #require(pid_t(try String(contentsOf: pidFile, encoding: .utf8)))
        let status = try #require(Self.reap(proxy))
        #expect(status & 0x7f == 0 && (status >> 8) & 0xff == 4, "exec proxy wait status \(status)")

        let missing = try Self.smRunc(["exec", "lc-exec", "/no/such/program"], root: root)
        #expect(missing.status != 0 && missing.stderr.contains("no such file or directory"), "\(missing.stderr)")
        #expect(try Self.status("lc-exec", root: root) == "running")
        #expect(try String(contentsOf: out, encoding: .utf8).hasPrefix("up\n"))

        // ps: the VMM's host pid (the state's pid).
        let state = try JSONSerialization.jsonObject(with: Data(try Self.smRunc(["state", "lc-exec"], root: root).stdout.utf8)) as? [String: Any]
        let ps = try Self.smRunc(["ps", "--format", "json", "lc-exec"], root: root)
        #expect(ps.status == 0, "\(ps.stderr)")
        #expect((try JSONSerialization.jsonObject(with: Data(ps.stdout.utf8)) as? [Int]) == [state?["pid"] as? Int ?? -1])

        // pause: the guest stands still (no more ticks); resume: it runs on.
        #expect(try Self.smRunc(["pause", "lc-exec"], root: root).status == 0)
        #expect(try Self.status("lc-exec", root: root) == "paused")
        let paused = try Self.smRunc(["pause", "lc-exec"], root: root)
        #expect(paused.status == 1 && paused.stderr.contains("container already paused"))
        let ticks = try String(contentsOf: out, encoding: .utf8).count
        sleep(4)
        #expect(try String(contentsOf: out, encoding: .utf8).count == ticks)
        #expect(try Self.smRunc(["resume", "lc-exec"], root: root).status == 0)
        #expect(try Self.status("lc-exec", root: root) == "running")
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline, try String(contentsOf: out, encoding: .utf8).count == ticks { usleep(200_000) }
        #expect(try String(contentsOf: out, encoding: .utf8).count > ticks)
        let notPaused = try Self.smRunc(["resume", "lc-exec"], root: root)
        #expect(notPaused.status == 1 && notPaused.stderr.contains("container not paused"))

        // update: CPU and pids limits land in the VMM's cgroup (here below the caller's
        // own, as no cgroupsPath was given); memory is refused (guest RAM is fixed).
        let update = try Self.smRunc(["update", "--cpu-period", "100000", "--cpu-quota", "50000", "--pids-limit", "99", "lc-exec"], root: root)
        #expect(update.status == 0, "\(update.stderr)")
        let vmm = state?["pid"] as? Int ?? -1
        let lines = try String(contentsOfFile: "/proc/\(vmm)/cgroup", encoding: .utf8).split(separator: "\n")
        func cgroupFile(_ controller: String, _ file: String) -> String? {
            if let line = lines.first(where: { $0.split(separator: ":")[1].split(separator: ",").contains(Substring(controller)) }) {
                return try? String(contentsOfFile: "/sys/fs/cgroup/\(controller)\(line.split(separator: ":", maxSplits: 2)[2])/\(file)", encoding: .utf8)
            }
            let unified = lines.first { $0.hasPrefix("0::") }.map { String($0.dropFirst(3)) } ?? "/"
            return try? String(contentsOfFile: "/sys/fs/cgroup\(unified)/\(file)", encoding: .utf8)
        }
        #expect(lines.allSatisfy { $0.hasSuffix("/lc-exec") }, "\(lines)")
        #expect(cgroupFile("pids", "pids.max") == "99\n")
        #expect(cgroupFile("cpu", "cpu.cfs_quota_us") ?? cgroupFile("cpu", "cpu.max") == "50000\n" || cgroupFile("cpu", "cpu.max") == "50000 100000\n")
        let memory = try Self.smRunc(["update", "--memory", "1073741824", "lc-exec"], root: root)
        #expect(memory.status == 1 && memory.stderr.contains("a microVM's memory is fixed when it boots"), "\(memory.stderr)")
        let resources = bundle.appendingPathComponent("resources.json")
        try Data(#"{"devices": [{"allow": true, "access": "rwm"}]}"#.utf8).write(to: resources)
        let devices = try Self.smRunc(["update", "-r", resources.path, "lc-exec"], root: root)
        #expect(devices.status == 1 && devices.stderr.contains("update devices: not updatable"), "\(devices.stderr)")

        #expect(try Self.smRunc(["kill", "lc-exec", "KILL"], root: root).status == 0)
        _ = try Self.awaitStatus("stopped", "lc-exec", root: root)
        let stopped = try Self.smRunc(["exec", "lc-exec", "true"], root: root)
        #expect(stopped.status == 1 && stopped.stderr.contains("cannot exec in a stopped container"))
    }
}

extension VMBootTests.LifecycleTests {
    /// What happens to a created container's config.json after `create`.
    enum ConfigDamage: String, Sendable, CaseIterable, CustomTestStringConvertible {
        case deleted, broken
        var testDescription: String { rawValue }
    }

    /// `create` keeps what it resolved in the state directory (plan.json): once it
    /// returned, the bundle's config.json may be deleted or broken, and `state`,
    /// `start`, `exec` (with the container's cwd and env), `kill` and `delete` work on.
    @Test(arguments: ConfigDamage.allCases) func aCreatedContainerOutlivesItsConfigJSON(_ damage: ConfigDamage) throws {
        try requireKVM()
        #expect(cposix_set_child_subreaper() == 0)
        let bundle = try Run.makeBundle(args: ["sh", "-c", "echo started; while :; do read -t 1 x; done"])
        defer { try? FileManager.default.removeItem(at: bundle) }
        let root = bundle.appendingPathComponent("state")
        let out = bundle.appendingPathComponent("out")
        FileManager.default.createFile(atPath: out.path, contents: nil)
        let pidFile = bundle.appendingPathComponent("pid")
        let id = "lc-config-\(damage.rawValue)"
        let create = try Self.smRunc(["create", "--bundle", bundle.path, "--pid-file", pidFile.path, id], root: root, stdout: out)
        #expect(create.status == 0, "\(create.stderr)")
        let pid = try #require(pid_t(try String(contentsOf: pidFile, encoding: .utf8)))
        defer { _ = try? Self.smRunc(["delete", "--force", id], root: root) }

        let config = bundle.appendingPathComponent("config.json")
        switch damage {
        case .deleted: try FileManager.default.removeItem(at: config)
        case .broken: try Data(#"{"ociVersion": "1.2.0", "process": {"args": 5"#.utf8).write(to: config)
        }

        #expect(try Self.status(id, root: root) == "created")
        let start = try Self.smRunc(["start", id], root: root)
        #expect(start.status == 0, "\(start.stderr)")
        #expect(try Self.awaitStatus("running", id, root: root) == "running")
        // The exec'd process gets the container's cwd (/tmp) and env (PATH=/bin).
        let exec = try Self.smRunc(["exec", id, "sh", "-c", "echo \"$(pwd) $PATH\""], root: root)
        #expect(exec.status == 0 && exec.stdout == "/tmp /bin\n", "stdout \(exec.stdout) stderr \(exec.stderr)")

        let kill = try Self.smRunc(["kill", id, "KILL"], root: root)
        #expect(kill.status == 0, "\(kill.stderr)")
        #expect(try Self.awaitStatus("stopped", id, root: root) == "stopped")
        let status = try #require(Self.reap(pid))
        #expect(status & 0x7f == SIGKILL, "VMM wait status \(status)")
        let delete = try Self.smRunc(["delete", id], root: root)
        #expect(delete.status == 0, "\(delete.stderr)")
        let gone = try Self.smRunc(["state", id], root: root)
        #expect(gone.status == 1 && gone.stderr.contains("container does not exist"), "\(gone.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: root.path).isEmpty)
    }
}

extension VMBootTests.LifecycleTests {
    /// Namespaces given by path (issue 18): the pid in `state`, the VMM, is in the ipc and
    /// uts namespaces the spec names; a path of another kind is refused at create.
    @Test func theVMMJoinsTheIPCAndUTSNamespacesGivenByPath() throws {
        try requireKVM()
        #expect(cposix_set_child_subreaper() == 0)
        // A process in new ipc and uts namespaces whose /proc/PID/ns entries the spec names.
        let holder = Process()
        holder.executableURL = URL(fileURLWithPath: "/usr/bin/unshare")
        holder.arguments = ["--ipc", "--uts", "sleep", "300"]
        try holder.run()
        defer { kill(holder.processIdentifier, SIGKILL); holder.waitUntilExit() }
        func namespace(_ pid: pid_t, _ kind: String) -> String? {
            try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/ns/\(kind)")
        }
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline, namespace(holder.processIdentifier, "ipc") == namespace(getpid(), "ipc") { usleep(20_000) }
        let ipc = try #require(namespace(holder.processIdentifier, "ipc"))
        let uts = try #require(namespace(holder.processIdentifier, "uts"))
        #expect(ipc != namespace(getpid(), "ipc") && uts != namespace(getpid(), "uts"))

        let bundle = try Run.makeBundle(args: ["sh", "-c", "exit 0"], linux: ["namespaces": [
            ["type": "pid"], ["type": "network"], ["type": "mount"],
            ["type": "ipc", "path": "/proc/\(holder.processIdentifier)/ns/ipc"],
            ["type": "uts", "path": "/proc/\(holder.processIdentifier)/ns/uts"],
        ]])
        defer { try? FileManager.default.removeItem(at: bundle) }
        let root = bundle.appendingPathComponent("state")
        let pidFile = bundle.appendingPathComponent("pid")
        let create = try Self.smRunc(["create", "-b", bundle.path, "--pid-file", pidFile.path, "lc-ns"], root: root)
        #expect(create.status == 0, "\(create.stderr)")
        let pid = try #require(pid_t(try String(contentsOf: pidFile, encoding: .utf8)))
        #expect(namespace(pid, "ipc") == ipc, "the VMM's ipc namespace")
        #expect(namespace(pid, "uts") == uts, "the VMM's uts namespace")
        #expect(namespace(pid, "net") == namespace(getpid(), "net"), "no network path: the VMM stays in ours")
        #expect(try Self.smRunc(["kill", "lc-ns", "KILL"], root: root).status == 0)
        _ = Self.reap(pid)
        #expect(try Self.smRunc(["delete", "-f", "lc-ns"], root: root).status == 0)

        // Another kind of namespace at the path: refused at create, nothing left.
        let wrong = try Run.makeBundle(args: ["true"], linux: ["namespaces": [
            ["type": "pid"], ["type": "network"], ["type": "mount"], ["type": "uts"], ["type": "cgroup", "path": "/proc/self/ns/ipc"],
        ]])
        defer { try? FileManager.default.removeItem(at: wrong) }
        let refused = try Self.smRunc(["create", "-b", wrong.path, "lc-ns-wrong"], root: root)
        #expect(refused.status != 0 && refused.stderr.contains("cgroup path /proc/self/ns/ipc is an ipc namespace, not a cgroup namespace"),
                "\(refused.stderr)")
        #expect(try Self.status("lc-ns-wrong", root: root) == nil)
    }
}
