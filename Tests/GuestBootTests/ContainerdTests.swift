import Testing
import Foundation
import VMM
import CPosix

/// containerd 1.6 (Debian's) driving sm-runc as the runc binary of its
/// io.containerd.runc.v2 shim (`ctr run --runc-binary`), on a private daemon
/// (engines.md §4, §8.5, §9): its own root, state and sockets, CRI disabled, a clean
/// environment and nothing but fds 0-2, so no stray fd of ours reaches the shims. The
/// image is a busybox tree made by the podman test's helpers and saved by podman as a
/// docker-archive, which `ctr image import` takes (no registry).
extension VMBootTests {
    @Suite struct ContainerdTests {
        static let work = URL(fileURLWithPath: "/tmp/sm-runc-ctd-\(getpid())")
        static let namespace = "smtest"
        static let image = PodmanTests.image + ":latest"
        static var address: String { work.appendingPathComponent("containerd.sock").path }
        static var runcRoot: String { work.appendingPathComponent("runc").path }
        static var fifoDir: String { work.appendingPathComponent("fifo").path }
        /// What every `ctr run` gets: sm-runc as the shim's runc, with a private root.
        static var runtime: [String] { ["--runc-binary", RunCommandTests.smRunc, "--runc-root", runcRoot, "--fifo-dir", fifoDir] }
        static let environment = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root"]

        /// `runtime` with sm-runc behind a wrapper that puts `--debug` in front of the
        /// shim's arguments: the shim's own `--log <task>/log.json` (which comes after,
        /// and so wins) then holds the debug log (`taskLog`).
        static func debugRuntime() throws -> [String] {
            let wrapper = work.appendingPathComponent("sm-runc-debug").path
            try "#!/bin/sh\nexec '\(RunCommandTests.smRunc)' --debug \"$@\"\n".write(toFile: wrapper, atomically: true, encoding: .utf8)
            try #require(chmod(wrapper, 0o755) == 0, "chmod \(wrapper): \(String(cString: strerror(errno)))")
            return ["--runc-binary", wrapper, "--runc-root", runcRoot, "--fifo-dir", fifoDir]
        }

        /// The runtime's log of task `id` (the shim's `--log`), while the task exists.
        static func taskLog(_ id: String) -> String {
            let path = work.appendingPathComponent("state/io.containerd.runtime.v2.task/\(namespace)/\(id)/log.json").path
            return (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        }

        struct Result { var status: Int32; var stdout: String; var stderr: String }

        /// Spawns `tool` with stdin /dev/null, stdout/stderr in files, the clean
        /// environment and ONLY fds 0-2 (the test runner's other fds would otherwise reach
        /// containerd and its shims); waits for it (killed after `timeout` seconds).
        static func spawn(_ tool: String, _ arguments: [String], newSession: Bool = false,
                          stdout: String, stderr: String) throws -> pid_t {
            var actions = posix_spawn_file_actions_t()
            posix_spawn_file_actions_init(&actions)
            defer { posix_spawn_file_actions_destroy(&actions) }
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
            posix_spawn_file_actions_addopen(&actions, 1, stdout, O_WRONLY | O_CREAT | O_APPEND, 0o600)
            posix_spawn_file_actions_addopen(&actions, 2, stderr, O_WRONLY | O_CREAT | O_APPEND, 0o600)
            cposix_spawn_closefrom(&actions, 3)
            var attributes = posix_spawnattr_t()
            posix_spawnattr_init(&attributes)
            defer { posix_spawnattr_destroy(&attributes) }
            if newSession { cposix_spawn_setsid(&attributes) }
            let argv = ([tool] + arguments).map { strdup($0) } + [nil]
            let envp = environment.map { strdup($0) } + [nil]
            defer { argv.forEach { free($0) }; envp.forEach { free($0) } }
            var pid: pid_t = 0
            let rc = posix_spawn(&pid, tool, &actions, &attributes, argv, envp)
            guard rc == 0 else { throw POSIXError(POSIXErrorCode(rawValue: rc) ?? .EIO) }
            return pid
        }

        static func shell(_ tool: String, _ arguments: [String], timeout: TimeInterval = 300) throws -> Result {
            let tag = "\(UInt32.random(in: 0...UInt32.max))"
            let files = ["out", "err"].map { work.appendingPathComponent("call-\(tag).\($0)").path }
            defer { files.forEach { unlink($0) } }
            let pid = try spawn(tool, arguments, stdout: files[0], stderr: files[1])
            var status: Int32 = 0
            let deadline = Date().addingTimeInterval(timeout)
            var timedOut = false
            while true {
                let rc = waitpid(pid, &status, WNOHANG)
                if rc == pid || (rc < 0 && errno != EINTR) { break }
                if !timedOut && Date() > deadline {
                    timedOut = true
                    kill(pid, SIGKILL)
                }
                usleep(20_000)
            }
            let code = status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
            var result = Result(status: code, stdout: (try? String(contentsOfFile: files[0], encoding: .utf8)) ?? "",
                                stderr: (try? String(contentsOfFile: files[1], encoding: .utf8)) ?? "")
            if timedOut { result.stderr += "\n[killed after \(Int(timeout)) s: \(([tool] + arguments).joined(separator: " "))]" }
            return result
        }

        static func ctr(_ arguments: [String], timeout: TimeInterval = 300) throws -> Result {
            try shell("/usr/bin/ctr", ["--address", address, "--namespace", namespace] + arguments, timeout: timeout)
        }

        /// `ctr <arguments>` with a terminal: under `script`, whose pty is ctr's stdio.
        static func ctrInTerminal(_ arguments: [String]) throws -> Result {
            let words = ["/usr/bin/ctr", "--address", address, "--namespace", namespace] + arguments
            let command = words.map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }.joined(separator: " ")
            return try shell("/usr/bin/script", ["-qec", command, "/dev/null"])
        }

        /// `ctr task ls`: the task's pid and status.
        static func task(_ id: String) throws -> (pid: pid_t, status: String)? {
            let list = try ctr(["task", "ls"])
            for line in list.stdout.split(whereSeparator: \.isNewline) {
                let fields = line.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
                if fields.count == 3, fields[0] == id, let pid = pid_t(fields[1]) { return (pid, fields[2]) }
            }
            return nil
        }

        static func waitFor(_ seconds: TimeInterval, _ condition: () throws -> Bool) rethrows -> Bool {
            let deadline = Date().addingTimeInterval(seconds)
            while Date() < deadline {
                if try condition() { return true }
                usleep(200_000)
            }
            return try condition()
        }

        /// The socket:[…] and pipe:[…] objects behind a process's fds, by fd.
        static func openObjects(_ pid: pid_t) -> [Int: String] {
            let directory = "/proc/\(pid)/fd"
            var objects: [Int: String] = [:]
            for name in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] {
                guard let fd = Int(name), let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "\(directory)/\(name)") else { continue }
                objects[fd] = target
            }
            return objects
        }

        static func commandLine(_ pid: pid_t) -> [String] {
            guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return [] }
            return data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
        }

        static func parent(_ pid: pid_t) -> pid_t? {
            guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
            for line in status.split(whereSeparator: \.isNewline) where line.hasPrefix("PPid:") {
                return pid_t(line.dropFirst(5).trimmingCharacters(in: .whitespaces))
            }
            return nil
        }

        /// Processes whose command line satisfies `match`.
        static func processes(_ match: ([String]) -> Bool) -> [pid_t] {
            ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { pid_t($0) }.filter {
                $0 != getpid() && match(commandLine($0))
            }
        }

        /// sm-runc processes (VMMs, exec proxies) working in our runc root.
        static func ourSMRuncProcesses() -> [pid_t] {
            processes { argv in
                (argv.first.map { $0.hasSuffix("sm-runc") } ?? false) && argv.contains { $0.hasPrefix(runcRoot) }
            }
        }

        /// The containerd config: everything under `work`, CRI off.
        static func writeConfig() throws -> String {
            let path = work.appendingPathComponent("config.toml").path
            try """
                version = 2
                root = "\(work.path)/root"
                state = "\(work.path)/state"
                disabled_plugins = ["io.containerd.grpc.v1.cri"]
                [grpc]
                  address = "\(address)"
                [ttrpc]
                  address = "\(address).ttrpc"
                [debug]
                  address = "\(work.path)/debug.sock"
                """.write(toFile: path, atomically: true, encoding: .utf8)
            return path
        }

        /// The busybox image as a docker-archive: podman imports the tree, saves it.
        static func makeImageArchive() throws -> String {
            try PodmanTests.prepare()
            defer {
                _ = try? PodmanTests.shell("/usr/bin/podman", ["system", "reset", "-f"])
                try? FileManager.default.removeItem(at: PodmanTests.work)
            }
            let archive = work.appendingPathComponent("bb-docker.tar").path
            let saved = try PodmanTests.podman(["save", "--format", "docker-archive", "-o", archive, PodmanTests.image])
            try #require(saved.status == 0, "podman save: \(saved.stderr)")
            return archive
        }

        /// What tells who died of a signal: the guest kernel's segfault lines (read by
        /// an exec of `busybox dmesg`), new host cores (a crashed exec proxy or VMM
        /// dumps one; a proxy relaying a guest process's signal does not), the host
        /// kernel's lines and the logs. On the nested-KVM build machines guest processes
        /// have been seen to die of SIGSEGV there, with corrupt YMM registers (README).
        static func crashEvidence(since start: Date, bundle id: String) -> String {
            var evidence: [String] = ["host cores of this test's sm-runc processes: \(ourCores(since: start))"]
            let guest = try? ctr(["task", "exec", "--fifo-dir", fifoDir, "--exec-id", "dmesg-\(UInt32.random(in: 0...UInt32.max))", id, "busybox", "dmesg"], timeout: 120)
            let guestLines = (guest?.stdout ?? "").split(whereSeparator: \.isNewline).filter { $0.contains("segfault") || $0.contains("traps:") || $0.contains("Code:") }
            evidence.append("guest dmesg: \(guestLines.suffix(6).joined(separator: " | ")) \(guest?.stderr ?? "")")
            if let directory = coreDirectory {
                evidence.append("all new cores in \(directory): \(newCores(since: start))")
            }
            let dmesg = try? shell("/usr/bin/dmesg", [])
            let lines = (dmesg?.stdout ?? "").split(whereSeparator: \.isNewline).filter { $0.contains("segfault") || $0.contains("traps:") }
            evidence.append("dmesg: \(lines.suffix(5).joined(separator: " | "))")
            let log = work.appendingPathComponent("state/io.containerd.runtime.v2.task/\(namespace)/\(id)/log.json").path
            evidence.append("log.json: \((try? String(contentsOfFile: log, encoding: .utf8))?.suffix(2000) ?? "none")")
            let daemon = (try? String(contentsOf: work.appendingPathComponent("containerd.log"), encoding: .utf8)) ?? ""
            evidence.append("containerd.log: \(daemon.split(whereSeparator: \.isNewline).suffix(10).joined(separator: " | "))")
            return evidence.joined(separator: "\n")
        }

        /// Where cores go (core_pattern a plain absolute path), or nil.
        static var coreDirectory: String? {
            let pattern = (try? String(contentsOfFile: "/proc/sys/kernel/core_pattern", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
            return pattern.hasPrefix("/") ? (pattern as NSString).deletingLastPathComponent : nil
        }

        static func newCores(since start: Date) -> [String] {
            guard let directory = coreDirectory else { return [] }
            return ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).map { directory + "/" + $0 }.filter {
                ((try? FileManager.default.attributesOfItem(atPath: $0))?[.modificationDate] as? Date).map { $0 >= start } ?? false
            }
        }

        /// New cores of sm-runc processes of this test: the command line in a core's
        /// NT_PRPSINFO note (after the program headers, near the start) names our runc
        /// root. The daemon runs with RLIMIT_CORE unlimited, so a crash leaves one.
        static func ourCores(since start: Date) -> [String] {
            let marker = Data(runcRoot.utf8)
            return newCores(since: start).filter { path in
                guard let file = FileHandle(forReadingAtPath: path) else { return false }
                defer { try? file.close() }
                return (try? file.read(upToCount: 4 << 20))?.range(of: marker) != nil
            }
        }

        /// Kills what is left: tasks and containers through containerd, then the daemon,
        /// stray shims and VMMs of ours, mounts under `work`, and `work`.
        static func cleanUp(daemon: pid_t, ids: [String]) {
            if daemon > 0 {
                for id in ids {
                    _ = try? ctr(["task", "rm", "-f", id], timeout: 60)
                    _ = try? ctr(["container", "rm", id], timeout: 60)
                }
                kill(daemon, SIGTERM)
                var status: Int32 = 0
                let stopped = waitFor(15) { waitpid(daemon, &status, WNOHANG) == daemon }
                if !stopped { kill(daemon, SIGKILL); waitpid(daemon, &status, 0) }
            }
            let shims = processes { argv in argv.first?.hasSuffix("containerd-shim-runc-v2") == true && argv.contains(address) }
            for pid in shims + ourSMRuncProcesses() { kill(pid, SIGKILL) }
            let mounts = ((try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)) ?? "").split(whereSeparator: \.isNewline).compactMap { line -> String? in
                let fields = line.split(separator: " ")
                return fields.count > 4 && fields[4].hasPrefix(work.path + "/") ? String(fields[4]) : nil
            }
            for mount in mounts.reversed() { umount2(mount, Int32(MNT_DETACH)) }
            try? FileManager.default.removeItem(at: work)
        }

        @Test func containerdRunsTasksInMicroVMs() throws {
            try Self.scenarios()
        }

        /// One daemon for all: run --rm (exit codes, -t), run -d with exec (plain, -t,
        /// detached), ps, fd hygiene, pause/resume, kill --all, rm -f, and no leftovers.
        static func scenarios() throws {
            try requireKVM()
            let start = Date()
            for tool in ["/usr/bin/containerd", "/usr/bin/ctr", "/usr/bin/containerd-shim-runc-v2", "/usr/bin/script", "/usr/bin/prlimit"] {
                guard FileManager.default.isExecutableFile(atPath: tool) else {
                    Issue.record("\(tool) is missing (scripts/setup-deps.sh installs containerd)")
                    return
                }
            }
            let ids = ["t1", "t2", "t3", "d1", "d2"]
            var daemon: pid_t = 0
            defer { cleanUp(daemon: daemon, ids: ids) }
            try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
            for directory in ["root", "state", "runc", "fifo"] {
                try FileManager.default.createDirectory(at: work.appendingPathComponent(directory), withIntermediateDirectories: true)
            }
            // Cores of anything under containerd go to core_pattern's directory (checked at the end).
            if let coreDirectory {
                try? FileManager.default.createDirectory(atPath: coreDirectory, withIntermediateDirectories: true)
            }

            // The daemon: its own session, cwd /, the clean environment, fds 0-2 only,
            // core dumps allowed (inherited by the shims, sm-runc and its exec proxies).
            let config = try writeConfig()
            let log = work.appendingPathComponent("containerd.log").path
            daemon = try spawn("/usr/bin/env", ["-C", "/", "/usr/bin/prlimit", "--core=unlimited", "/usr/bin/containerd", "--config", config],
                                   newSession: true, stdout: log, stderr: log)
            let up = try waitFor(60) {
                var status: Int32 = 0
                if waitpid(daemon, &status, WNOHANG) == daemon { return true }
                guard FileManager.default.fileExists(atPath: address) else { return false }
                return try ctr(["version"], timeout: 30).status == 0
            }
            try #require(up && kill(daemon, 0) == 0, "containerd did not come up: \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
            #expect(commandLine(daemon).first == "/usr/bin/containerd", "\(commandLine(daemon))")

            let archive = try makeImageArchive()
            let imported = try ctr(["image", "import", "--base-name", PodmanTests.image, archive])
            try #require(imported.status == 0, "ctr image import: \(imported.stdout) \(imported.stderr)")
            #expect(try ctr(["image", "ls", "-q"]).stdout.contains(image))

            // run --rm: output and exit code.
            let hello = try ctr(["run", "--rm"] + runtime + [image, "t1", "echo", "hi"])
            #expect(hello.status == 0 && hello.stdout == "hi\n", "\(hello.stdout) \(hello.stderr)")
            let three = try ctr(["run", "--rm"] + runtime + [image, "t2", "sh", "-c", "exit 3"])
            #expect(three.status == 3, "\(three.stderr)")

            // run -d, then exec: output and exit code. The container's two start-ups
            // (sh, then the sleeps) finish first: on this emulating host, processes of one
            // guest that start at the same time occasionally corrupt each other's YMM
            // registers and die by SIGSEGV (README, "Nested, emulating KVM").
            let detached = try ctr(["run", "-d"] + runtime + [image, "d1", "sh", "-c", "sleep 100 & sleep 100"])
            try #require(detached.status == 0, "\(detached.stderr)")
            if HostKind.detect() == .emulating { sleep(5) }
            let exec = try ctr(["task", "exec", "--fifo-dir", fifoDir, "--exec-id", "e1", "d1", "sh", "-c", "echo execd; exit 5"])
            #expect(exec.status == 5 && exec.stdout == "execd\n",
                    "exec: status \(exec.status), stdout \(exec.stdout.debugDescription), stderr \(exec.stderr)\n\(exec.status > 128 ? crashEvidence(since: start, bundle: "d1") : "")")

            // exec -t: the process has a pty.
            let tty = try ctrInTerminal(["task", "exec", "-t", "--fifo-dir", fifoDir, "--exec-id", "e2", "d1", "tty"])
            #expect(tty.status == 0, "\(tty.stdout) \(tty.stderr)")
            // The first line (ctr may log "cannot resize a stopped container" after a
            // short exec, as it does with runc: engines.md §6.2).
            let ttyLine = tty.stdout.split(whereSeparator: \.isNewline).first.map { $0.trimmingCharacters(in: .whitespacesAndNewlines) } ?? ""
            #expect(ttyLine.range(of: #"^/dev/pts/[0-9]+$"#, options: .regularExpression) != nil,
                    "\(tty.stdout.debugDescription) \(tty.stderr)")

            // A detached exec still running: its proxy is in `task ps` with the VMM.
            let sleeper = try ctr(["task", "exec", "-d", "--fifo-dir", fifoDir, "--exec-id", "s1", "d1", "sleep", "30"])
            #expect(sleeper.status == 0, "\(sleeper.stderr)")
            let vmm = try #require(try task("d1"), "d1 is not in task ls").pid
            let ps = try ctr(["task", "ps", "d1"])
            #expect(ps.status == 0, "\(ps.stderr)")
            let rows = ps.stdout.split(whereSeparator: \.isNewline).dropFirst().map { $0.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true) }
            let psPids = rows.compactMap { $0.first.flatMap { pid_t($0) } }
            #expect(psPids.contains(vmm), "task ls pid \(vmm), task ps:\n\(ps.stdout)")
            #expect(commandLine(vmm).contains("vmm") && commandLine(vmm).contains { $0.hasPrefix(runcRoot) }, "\(commandLine(vmm))")
            let proxy = try #require(rows.first { $0.count == 2 && $0[1].contains("ExecID:s1") }.flatMap { pid_t($0[0]) },
                                     "no s1 in task ps:\n\(ps.stdout)")
            #expect(commandLine(proxy).contains("exec"), "\(commandLine(proxy))")

            // fd hygiene: the VMM and the exec proxy hold no object of the shim's beyond
            // the stdio containerd passed (the VMM relays the exec's stdio, the proxy's
            // fds 0-2, to the guest while it runs).
            let shim = try #require(parent(vmm))
            #expect(commandLine(shim).first?.hasSuffix("containerd-shim-runc-v2") == true, "VMM's parent: \(commandLine(shim))")
            #expect(parent(proxy) == shim, "the exec proxy's parent is \(String(describing: parent(proxy))), not the shim \(shim)")
            let shimObjects = Set(openObjects(shim).values.filter { $0.hasPrefix("socket:") || $0.hasPrefix("pipe:") })
            let vmmFDs = openObjects(vmm), proxyFDs = openObjects(proxy)
            for fd in 0...2 {
                let target = vmmFDs[fd] ?? "closed"
                #expect(target == "/dev/null" || (target.hasPrefix("pipe:") && shimObjects.contains(target)),
                        "VMM fd \(fd) is \(target), not a pipe of the shim's or /dev/null")
                let execTarget = proxyFDs[fd] ?? "closed"
                #expect(execTarget == "/dev/null" || (execTarget.hasPrefix("pipe:") && shimObjects.contains(execTarget)),
                        "exec proxy fd \(fd) is \(execTarget), not a pipe of the shim's or /dev/null")
            }
            // Beyond 0-2 the VMM may hold only the running exec's stdio (the proxy's fds
            // 0-2, relayed to the guest); the proxy nothing of the shim's.
            let execStdio = Set((0...2).compactMap { proxyFDs[$0] })
            for (who, fds, allowed) in [("VMM", vmmFDs, execStdio), ("exec proxy", proxyFDs, [])] {
                let shared = fds.filter { $0.key > 2 && shimObjects.contains($0.value) && !allowed.contains($0.value) }
                #expect(shared.isEmpty, "\(who) fds shared with the shim \(shim): \(shared.sorted { $0.key < $1.key })")
            }

            // pause / resume.
            #expect(try ctr(["task", "pause", "d1"]).status == 0)
            #expect(try task("d1")?.status == "PAUSED")
            #expect(try ctr(["task", "resume", "d1"]).status == 0)
            #expect(try task("d1")?.status == "RUNNING")

            // kill --all -s SIGKILL: the task stops with 137, the exec proxy with it.
            let killed = try ctr(["task", "kill", "--all", "-s", "SIGKILL", "d1"])
            #expect(killed.status == 0, "\(killed.stderr)")
            #expect(try waitFor(60) { try task("d1")?.status == "STOPPED" }, "d1: \(String(describing: try? task("d1")))")
            #expect(waitFor(30) { kill(proxy, 0) != 0 }, "the exec proxy \(proxy) outlived the container")
            let removed = try ctr(["task", "rm", "d1"])
            #expect(removed.status == 0, "\(removed.stderr)")
            #expect(removed.stderr.contains("exit with non-zero exit code 137"), "task rm: \(removed.stderr)")
            #expect(try ctr(["container", "rm", "d1"]).status == 0)

            // task rm -f of a running task; it has a bind mount, and starts from the
            // snapshot all the same (made on first use by t1 if the cache had none): the
            // runtime's --debug log says so.
            let volume = work.appendingPathComponent("volume").path
            try FileManager.default.createDirectory(atPath: volume, withIntermediateDirectories: true)
            let second = try ctr(["run", "-d", "--mount", "type=bind,src=\(volume),dst=/data,options=rbind:rw"] + debugRuntime() +
                                 [image, "d2", "sh", "-c", "echo from d2 > /data/d2; sleep 100"])
            #expect(second.status == 0, "\(second.stderr)")
            #expect(waitFor(60) { (try? String(contentsOfFile: volume + "/d2", encoding: .utf8)) == "from d2\n" },
                    "d2 wrote nothing through its bind mount")
            let d2Log = taskLog("d2")
            let started = d2Log.split(separator: "\n").first { $0.contains("started from snapshot") }
            #expect(started != nil && !d2Log.contains("booted: no snapshot"),
                    "d2 did not start from the snapshot; runtime log:\n\(d2Log.split(separator: "\n").filter { $0.contains("snapshot") }.joined(separator: "\n"))")
            print("ctr run -d --mount: \(started.map(String.init) ?? "no 'started from snapshot' line")")
            let forced = try ctr(["task", "rm", "-f", "d2"])
            #expect(forced.status == 0, "\(forced.stderr)")
            #expect(try task("d2") == nil)
            #expect(try ctr(["container", "rm", "d2"]).status == 0)

            // run --rm -t: a pty, and the exit code.
            let terminal = try ctrInTerminal(["run", "--rm", "-t"] + runtime + [image, "t3", "sh", "-c", "tty; exit 4"])
            #expect(terminal.status == 4, "\(terminal.stdout.debugDescription) \(terminal.stderr)")
            #expect(terminal.stdout.contains("/dev/pts/"), "\(terminal.stdout.debugDescription)")

            // No sm-runc process crashed (a proxy relaying a guest process's signal dumps
            // no core; nothing here is killed by a core-dumping signal).
            let cores = ourCores(since: start)
            #expect(cores.isEmpty, "sm-runc processes of this test dumped core: \(cores) (gdb .build/debug/sm-runc CORE)")

            // Nothing is left: no state in the runc root, no VMM or exec proxy.
            let left = (try? FileManager.default.contentsOfDirectory(atPath: runcRoot + "/" + namespace)) ?? []
            #expect(left.isEmpty, "left in \(runcRoot)/\(namespace): \(left)")
            #expect(waitFor(10) { ourSMRuncProcesses().isEmpty }, "sm-runc processes left: \(ourSMRuncProcesses().map { commandLine($0) })")
        }
    }
}
