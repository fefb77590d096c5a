import ArgumentParser
import Foundation
import VMM

/// Issue 7's figures, in one run: create+start to the first byte of output from a cold
/// boot, from a snapshot and with `runc run` of the same bundle; the VMM side of a
/// restore; where the time after the guest starts running goes; and the proportional
/// set size of N idle containers restored from one snapshot against N booted ones.
struct StartBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "start",
        abstract: "First byte of output: cold boot vs snapshot restore vs runc; restore ms; PSS of N idle containers.")

    @Option(help: "Timed runs of each series (interleaved; the order alternates each round; 0: memory figures only).") var runs = 3
    @Option(help: "Idle containers of each kind for the memory figures (0: skip).") var idle = 3
    @Option(help: "The sm-runc binary (default: sm-runc beside sm-bench, i.e. the release build scripts/bench.sh makes).")
    var smRunc: String?
    @Option(help: "The runc binary.") var runc = "/usr/bin/runc"
    @Option(help: "A static busybox to build the rootfs from.") var busybox = "/bin/busybox"
    @Option(help: "Deadline per command in seconds.") var deadline = 600.0
    @Option(help: "Directory in which the temporary work directory is made.") var directory: String?

    enum Series: Int, CaseIterable {
        case boot, snapshot, runc, snapshotNoJail
        var label: String {
            switch self {
            case .boot: "sm-runc, cold boot"
            case .snapshot: "sm-runc, snapshot"
            case .runc: "runc"
            case .snapshotNoJail: "snapshot, no jail"
            }
        }
        /// The --log file name of a run.
        var logName: String {
            switch self {
            case .boot: "boot"
            case .snapshot: "snapshot"
            case .runc: "runc"
            case .snapshotNoJail: "snapshot-nojail"
            }
        }
    }

    struct Failure: Error, CustomStringConvertible { let description: String }

    func run() throws {
        guard runs >= 0, idle >= 0, runs + idle > 0 else { throw ValidationError("--runs and --idle: 0 or more, not both 0") }
        let engine = EngineBenchmark.parseOrExit(smRunc.map { ["--sm-runc", $0] } ?? [])
        let smRunc = try engine.resolveSMRunc()
        let artifacts = try engine.guestArtifacts(forBinary: smRunc)
        for tool in [runc, busybox] where access(tool, X_OK) != 0 {
            throw Failure(description: "\(tool) is not executable (scripts/setup-deps.sh installs runc)")
        }
        let parent = directory ?? FileManager.default.temporaryDirectory.path
        let work = Work(path: parent + "/sm-bench-start-\(getpid())", podman: "/usr/bin/podman")
        let cache = work.path + "/cache"
        let interrupts = Interrupts.install()
        defer {
            work.cleanUp(runtimes: [], runtimeRoots: [(runc, work.runcRoot), (smRunc, work.smRuncRoot)])
            interrupts.cancel()
        }
        try work.prepare(busybox: busybox)
        // A bind mount, as every engine container has (podman's /etc/hosts...): the
        // snapshot must serve it too. The first byte is read through it.
        let data = work.path + "/data"
        try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
        try "first byte\n".write(toFile: data + "/greeting", atomically: true, encoding: .utf8)
        try work.makeBundle(runc: runc, args: ["cat", "/data/greeting"], binds: [(data, "/data")])
        let idleBundle = work.path + "/idle-bundle"
        try work.makeBundle(runc: runc, args: ["sh", "-c", "echo ready; exec sleep 1000000"], at: idleBundle)
        try FileManager.default.createDirectory(atPath: cache, withIntermediateDirectories: true)

        let hostKind = HostKind.detect()
        print("sm-bench start: \(runs) timed run(s) of each series, interleaved; \(idle) idle container(s) of each kind")
        print("  runc     \(runc): \(firstLine(try work.execute([runc, "--version"]).stdout))")
        print("  sm-runc  \(smRunc): \(firstLine(try work.execute([smRunc, "--version"]).stdout))")
        print("  guest    kernel \(artifacts.kernel), agent root \(artifacts.root)")
        print("  host     \(hostKind.summary)")
        if hostKind == .emulating {
            print("  NOTE     nested emulating KVM: guest kernel code runs ~1000x slower than on hardware; compare the columns")
        }
        print("  bundle   \(work.bundle): `runc spec`, process.args [\"cat\", \"/data/greeting\"], busybox root (read-only),")
        print("           a read-write bind mount of \(data) on /data")
        print("  cache    \(cache) (SM_RUNC_CACHE, private to this run)")

        // The snapshot, made ahead of time (untimed here; `sm-runc snapshot` prints its cost).
        let made = try work.execute([smRunc, "snapshot"], deadline: deadline, interrupts: interrupts, extraEnvironment: ["SM_RUNC_CACHE=\(cache)"])
        guard made.status == 0 else { throw Failure(description: "sm-runc snapshot failed (exit \(made.status)): \(made.stderr)") }
        print("  snapshot \(made.stdout.split(separator: "\n").joined(separator: "; "))")
        try interrupts.check()

        let commands: [Series: (Int) -> (argv: [String], environment: [String])] = [
            .boot: { i in ([smRunc, "--root", work.smRuncRoot, "--debug", "--log", work.path + "/boot-\(i).log", "run",
                            "--bundle", work.bundle, "bench-boot-\(i)"], ["SM_RUNC_CACHE=\(cache)", "SM_RUNC_SNAPSHOT=off"]) },
            .snapshot: { i in ([smRunc, "--root", work.smRuncRoot, "--debug", "--log", work.path + "/snapshot-\(i).log", "run",
                                "--bundle", work.bundle, "bench-snap-\(i)"], ["SM_RUNC_CACHE=\(cache)", "SM_RUNC_SNAPSHOT=restore"]) },
            .runc: { i in ([runc, "--root", work.runcRoot, "run", "--bundle", work.bundle, "bench-runc-\(i)"], []) },
            // The VMM's jail's cost: the same start with SM_RUNC_VMM_JAIL=off.
            .snapshotNoJail: { i in ([smRunc, "--root", work.smRuncRoot, "--debug", "--log", work.path + "/snapshot-nojail-\(i).log", "run",
                                      "--bundle", work.bundle, "bench-snapnj-\(i)"],
                                     ["SM_RUNC_CACHE=\(cache)", "SM_RUNC_SNAPSHOT=restore", "SM_RUNC_VMM_JAIL=off"]) },
        ]
        print("")
        print("commands (stdin /dev/null, stdout a pipe: first byte and exit are timed from spawn, CLOCK_MONOTONIC)")
        for series in Series.allCases {
            let (argv, environment) = commands[series]!(0)
            print("  " + series.label.padding(toLength: 20, withPad: " ", startingAt: 0) + (environment + [shellJoin(argv)]).joined(separator: " "))
        }
        fflush(nil)

        var results: [[FirstByte?]] = Array(repeating: Array(repeating: nil, count: Series.allCases.count), count: runs)
        for round in 0..<runs {
            let order: [Series] = round % 2 == 0 ? [.boot, .snapshot, .snapshotNoJail, .runc] : [.runc, .snapshotNoJail, .snapshot, .boot]
            var cells: [String] = []
            for series in order {
                let (argv, environment) = commands[series]!(round + 1)
                var timed = try firstByte(argv, environment: work.environment + environment, interrupts: interrupts)
                try interrupts.check()
                if series != .runc {
                    timed.log = (try? String(contentsOfFile: work.path + "/\(series.logName)-\(round + 1).log",
                                             encoding: .utf8)) ?? ""
                }
                results[round][series.rawValue] = timed
                cells.append("\(series.label) \(timed.summary)")
                if !timed.succeeded {
                    print("  round \(round + 1) \(series.label) FAILED: exit \(timed.status), output \(timed.output.debugDescription)")
                    for line in (timed.stderr + timed.log).split(separator: "\n").suffix(15) { print("    | " + line) }
                }
            }
            print("  round \(round + 1): " + cells.joined(separator: ", "))
            fflush(nil)
        }
        if runs > 0 { report(results) }

        if idle > 0 {
            print("")
            print("memory: \(idle) idle containers of each kind (`sm-runc run -d` of sh -c 'echo ready; exec sleep 1000000'),")
            print("measured once all of a kind print ready, plus 3 s; PSS from /proc/PID/smaps of each VMM process")
            fflush(nil)
            var kinds: [(String, [MemoryUse])] = []
            for (kind, environment) in [("booted", ["SM_RUNC_SNAPSHOT=off"]), ("restored", ["SM_RUNC_SNAPSHOT=restore"])] {
                let uses = try idleContainers(kind: kind, bundle: idleBundle, smRunc: smRunc, work: work,
                                              environment: work.environment + ["SM_RUNC_CACHE=\(cache)"] + environment,
                                              interrupts: interrupts)
                kinds.append((kind, uses))
            }
            reportMemory(kinds)
        }
    }

    // MARK: - First byte

    struct FirstByte {
        var status: Int32
        var firstByte: Double?
        var seconds: Double
        var output: String
        var stderr: String
        var log = ""
        var succeeded: Bool { status == 0 && firstByte != nil }
        var summary: String {
            "first byte \(firstByte.map { formatFixed($0, digits: 3) } ?? "-") s, exit \(formatFixed(seconds, digits: 3)) s"
                + (succeeded ? "" : " (FAILED)")
        }
        /// The VMM's restore, from `--debug`: "machine restored from P: 128 MiB RAM, X ms (step a ms, ...)".
        var restore: (total: Double, steps: [(String, Double)])? {
            guard let line = log.split(separator: "\n").first(where: { $0.contains("machine restored from ") }),
                  let range = line.range(of: " MiB RAM, ") else { return nil }
            let rest = line[range.upperBound...]
            guard let total = Double(rest.prefix { $0 != " " }) else { return nil }
            var steps: [(String, Double)] = []
            if let open = rest.firstIndex(of: "("), let close = rest.lastIndex(of: ")") {
                for part in rest[rest.index(after: open)..<close].split(separator: ",") {
                    let words = part.trimmingCharacters(in: .whitespaces).split(separator: " ")
                    if words.count >= 3, let ms = Double(words[words.count - 2]) {
                        steps.append((words.dropLast(2).joined(separator: " "), ms))
                    }
                }
            }
            return (total, steps)
        }
        /// The VMM process's host CPU, from `--debug`: "VMM CPU: A ms in all, B ms of it in KVM_RUN, C ms outside".
        var vmmCPU: (all: Double, kvmRun: Double, outside: Double)? {
            guard let line = log.split(separator: "\n").first(where: { $0.contains("VMM CPU: ") }),
                  let range = line.range(of: "VMM CPU: ") else { return nil }
            let numbers = line[range.upperBound...].split(separator: ",").compactMap { part in
                Double(part.trimmingCharacters(in: .whitespaces).prefix { $0 != " " })
            }
            guard numbers.count == 3 else { return nil }
            return (numbers[0], numbers[1], numbers[2])
        }
        /// The VMM's timeline, from `--debug`: "timeline: A, +x ms B, +y ms C, ...".
        var timeline: [(String, Double)] {
            guard let line = log.split(separator: "\n").first(where: { $0.contains("timeline: ") }),
                  let range = line.range(of: "timeline: ") else { return [] }
            let text = line[range.upperBound...].replacingOccurrences(of: "\"", with: "")
            return text.split(separator: ",").dropFirst().compactMap { part in
                let words = part.trimmingCharacters(in: .whitespaces).split(separator: " ", maxSplits: 2)
                guard words.count == 3, words[0].hasPrefix("+"), let ms = Double(words[0].dropFirst()) else { return nil }
                return (String(words[2].split(separator: "(total").first ?? words[2]).trimmingCharacters(in: .whitespaces), ms)
            }
        }
    }

    /// Spawns `argv` with stdout on a pipe; times the first byte and the exit.
    func firstByte(_ argv: [String], environment: [String], interrupts: Interrupts) throws -> FirstByte {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw Failure(description: "pipe: \(String(cString: strerror(errno)))") }
        let errFile = FileManager.default.temporaryDirectory.path + "/sm-bench-start-\(getpid())-err"
        defer { unlink(errFile) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
        posix_spawn_file_actions_addopen(&actions, 2, errFile, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_addclose(&actions, fds[0])
        posix_spawn_file_actions_addclose(&actions, fds[1])
        let start = monotonicSeconds()
        let spawned = Result { try interrupts.spawn(argv, environment: environment, actions: &actions) }
        close(fds[1])
        defer { close(fds[0]) }
        let pid = try spawned.get()
        var first: Double?
        var output: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        var timedOut = false
        while true {
            var poller = pollfd(fd: fds[0], events: Int16(POLLIN), revents: 0)
            let ready = poll(&poller, 1, 200)
            if ready < 0 && errno == EINTR { continue }
            if monotonicSeconds() - start > deadline {
                timedOut = true
                interrupts.kill(SIGKILL)
                break
            }
            if ready == 0 { continue }
            let n = buffer.withUnsafeMutableBytes { read(fds[0], $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            if first == nil { first = monotonicSeconds() - start }
            if output.count < 4096 { output += buffer[0..<n] }
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let seconds = monotonicSeconds() - start
        interrupts.child.withLock { $0 = 0 }
        let code = timedOut ? 124 : status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return FirstByte(status: code, firstByte: first, seconds: seconds, output: String(decoding: output, as: UTF8.self),
                         stderr: (try? String(contentsOfFile: errFile, encoding: .utf8)) ?? "")
    }

    func report(_ results: [[FirstByte?]]) {
        func ok(_ series: Series) -> [FirstByte] { results.compactMap { $0[series.rawValue] }.filter(\.succeeded) }
        print("")
        print("summary: create+start to the first byte of output (and to exit), seconds, successful runs only")
        print("  " + "".padding(toLength: 22, withPad: " ", startingAt: 0) + ["n", "min", "median", "mean", "exit (median)"]
            .map { $0.padding(toLength: 10, withPad: " ", startingAt: 0) }.joined())
        for series in Series.allCases {
            let values = ok(series)
            let first = values.compactMap(\.firstByte)
            print("  " + series.label.padding(toLength: 22, withPad: " ", startingAt: 0)
                + ["\(values.count)/\(results.count)", fixed(first.min()), fixed(median(first)), fixed(mean(first)),
                   fixed(median(values.map(\.seconds)))].map { $0.padding(toLength: 10, withPad: " ", startingAt: 0) }.joined())
        }
        let boot = median(ok(.boot).compactMap(\.firstByte)), snapshot = median(ok(.snapshot).compactMap(\.firstByte))
        let runc = median(ok(.runc).compactMap(\.firstByte))
        if let boot, let snapshot, snapshot > 0 {
            print("  cold boot / snapshot (medians): \(formatFixed(boot / snapshot, digits: 1))x (goal: at least 20x)")
        }
        if let runc, let snapshot, runc > 0 {
            print("  snapshot / runc (medians): \(formatFixed(snapshot / runc, digits: 1))x")
        }
        if let snapshot, let unjailed = median(ok(.snapshotNoJail).compactMap(\.firstByte)) {
            print("  the VMM's jail (snapshot - snapshot with SM_RUNC_VMM_JAIL=off, medians): \(formatFixed((snapshot - unjailed) * 1000, digits: 1)) ms")
        }
        let jailed = ok(.snapshot).compactMap { run in
            run.log.split(separator: "\n").lazy.compactMap { line -> Double? in
                guard let range = line.range(of: "VMM jailed in ") else { return nil }
                return Double(line[range.upperBound...].prefix { $0.isNumber || $0 == "." })
            }.first
        }
        if let inVMM = median(jailed) {
            print("  the jail inside the VMM (its `VMM jailed in` line, median): \(formatFixed(inVMM, digits: 2)) ms")
        }

        let restores = ok(.snapshot).compactMap(\.restore)
        print("")
        if restores.isEmpty {
            print("VMM side of a restore: not in the --debug logs (PROBLEM)")
        } else {
            let totals = restores.map(\.total)
            print("VMM side of a restore (KVM VM, RAM map, memory slot, devices, irqchip/clock/vCPU state), ms, from --debug:")
            print("  total: min \(formatFixed(totals.min()!, digits: 2)), median \(formatFixed(median(totals)!, digits: 2)), "
                + "max \(formatFixed(totals.max()!, digits: 2)) (goal: under 10 ms)")
            for (index, step) in restores[0].steps.enumerated() {
                let values = restores.compactMap { $0.steps.count > index ? $0.steps[index].1 : nil }
                print("    " + step.0.padding(toLength: 28, withPad: " ", startingAt: 0) + "median \(formatFixed(median(values)!, digits: 2))")
            }
        }

        print("")
        print("host CPU of the VMM process per start (medians, ms, from --debug: the whole process from exec, and the part")
        print("outside KVM_RUN, i.e. the VMM's own work; the guest's time inside KVM_RUN counts to the host too)")
        for series in [Series.boot, .snapshot] {
            let cpu = ok(series).compactMap(\.vmmCPU)
            guard !cpu.isEmpty else { print("  \(series.label): no 'VMM CPU' line (PROBLEM)"); continue }
            print("  " + series.label.padding(toLength: 22, withPad: " ", startingAt: 0)
                + "all \(fixed(median(cpu.map(\.all)), digits: 1)), in KVM_RUN \(fixed(median(cpu.map(\.kvmRun)), digits: 1)), "
                + "outside KVM_RUN \(fixed(median(cpu.map(\.outside)), digits: 1)) (n=\(cpu.count))")
        }

        print("")
        print("where the time goes (medians, ms; from the VMM's --debug timeline: the host's view of the guest's progress)")
        for series in [Series.boot, .snapshot] {
            let lines = ok(series).map(\.timeline).filter { !$0.isEmpty }
            guard let names = lines.first?.map(\.0) else { print("  \(series.label): no timeline (PROBLEM)"); continue }
            let first = ok(series).compactMap(\.firstByte)
            let steps = names.enumerated().map { index, name -> (String, Double) in
                (name, median(lines.compactMap { $0.count > index && $0[index].0 == name ? $0[index].1 : nil }) ?? 0)
            }
            print("  \(series.label) (from the VMM process's set-up):")
            var untilOutput = 0.0, guestUntilOutput = 0.0
            var reached = false, guestRuns = false
            for (name, ms) in steps {
                print("    +" + formatFixed(ms, digits: 1).padding(toLength: 10, withPad: " ", startingAt: 0) + name)
                if !reached {
                    untilOutput += ms
                    if guestRuns { guestUntilOutput += ms }
                }
                if name.hasPrefix("guest ") { guestRuns = true }
                if name == "first output" { reached = true }
            }
            if let firstByte = median(first), reached {
                let host = firstByte * 1000 - guestUntilOutput
                print("    the first byte's \(formatFixed(firstByte * 1000, digits: 1)) ms: guest running -> first output "
                    + "\(formatFixed(guestUntilOutput, digits: 1)) ms (guest work and its exits); the rest, "
                    + "\(formatFixed(host, digits: 1)) ms, is host-side (the sm-runc command, the VMM process's start, "
                    + "\(formatFixed(untilOutput - guestUntilOutput, digits: 1)) ms of set-up above, cgroup, confinement)")
                if series == .snapshot, HostKind.detect() == .emulating {
                    print("    estimate for hardware KVM: guest work ~1000x faster (nested-kvm.md), host side as here: "
                        + "about \(formatFixed(host + guestUntilOutput / 1000, digits: 0)) ms to the first byte (target: 100 ms)")
                }
            }
        }
        print("  milestones: VMM set-up = `sm-runc vmm` begins the container; machine built/restored = KVM VM ready (boot")
        print("  set-up, or RAM mapped and state loaded); guest booting/running = the vCPU thread starts (after the cgroup")
        print("  join, hooks and confinement); agent connected = the agent dialled vsock (after wake or boot); hello = protocol hello;")
        print("  created = root share, mounts and devices ready; start = `sm-runc start` reached the VMM;")
        print("  started = the process was forked and exec'd; first output = its first stdout/stderr bytes at the VMM")
    }

    // MARK: - Memory

    /// Starts `idle` containers of one kind, measures each VMM once all print ready, removes them.
    func idleContainers(kind: String, bundle: String, smRunc: String, work: Work, environment: [String],
                        interrupts: Interrupts) throws -> [MemoryUse] {
        var ids: [(id: String, out: String, pidFile: String)] = []
        defer {
            for entry in ids {
                _ = try? work.execute([smRunc, "--root", work.smRuncRoot, "delete", "--force", entry.id], extraEnvironment: environment)
                unlink(entry.out)
            }
        }
        let began = monotonicSeconds()
        for i in 1...idle {
            let id = "bench-idle-\(kind)-\(i)"
            let out = work.path + "/\(id).out", pidFile = work.path + "/\(id).pid"
            ids.append((id, out, pidFile))
            let started = try work.execute([smRunc, "--root", work.smRuncRoot, "run", "-d", "--pid-file", pidFile, "--bundle", bundle, id],
                                           deadline: deadline, interrupts: interrupts, extraEnvironment: environment, stdoutFile: out)
            try interrupts.check()
            guard started.status == 0 else { throw Failure(description: "\(kind) idle container \(id): exit \(started.status): \(started.stderr)") }
        }
        for entry in ids {
            while !((try? String(contentsOfFile: entry.out, encoding: .utf8)) ?? "").contains("ready") {
                try interrupts.check()
                guard monotonicSeconds() - began < deadline else { throw Failure(description: "\(entry.id) did not print ready") }
                usleep(200_000)
            }
        }
        print("  \(idle) \(kind) containers ready in \(formatFixed(monotonicSeconds() - began, digits: 1)) s")
        sleep(3)
        return try ids.map { entry in
            guard let pid = pid_t((try? String(contentsOfFile: entry.pidFile, encoding: .utf8)) ?? "") else {
                throw Failure(description: "\(entry.pidFile): no pid")
            }
            return try MemoryUse.of(pid, guestRAMMiB: 128)
        }
    }

    func reportMemory(_ kinds: [(String, [MemoryUse])]) {
        func mib(_ kb: Int) -> String { formatFixed(Double(kb) / 1024, digits: 1) }
        print("")
        print("summary: memory of \(idle) idle containers, MiB (PSS shares each page among the processes that map it)")
        print("  " + "".padding(toLength: 10, withPad: " ", startingAt: 0) + ["PSS total", "PSS each", "guest RAM PSS", "VMM PSS (not RAM)", "RSS total"]
            .map { $0.padding(toLength: 19, withPad: " ", startingAt: 0) }.joined())
        for (kind, uses) in kinds {
            let n = max(uses.count, 1)
            let pss = uses.map(\.pss).reduce(0, +), rss = uses.map(\.rss).reduce(0, +)
            let ram = uses.map(\.guestRAMPss).reduce(0, +), vmm = uses.map(\.vmmPss).reduce(0, +)
            print("  " + kind.padding(toLength: 10, withPad: " ", startingAt: 0)
                + [mib(pss), mib(pss / n), mib(ram / n), mib(vmm / n), mib(rss)].map { $0.padding(toLength: 19, withPad: " ", startingAt: 0) }.joined())
        }
        if kinds.count == 2 {
            let booted = kinds[0].1.map(\.pss).reduce(0, +), restored = kinds[1].1.map(\.pss).reduce(0, +)
            if restored > 0 { print("  booted / restored PSS: \(formatFixed(Double(booted) / Double(restored), digits: 2))x") }
        }
        print("  per process (pid: PSS / guest RAM PSS / RSS, MiB):")
        for (kind, uses) in kinds {
            print("    \(kind): " + uses.map { "\($0.pid): \(mib($0.pss)) / \(mib($0.guestRAMPss)) / \(mib($0.rss))" }.joined(separator: ", "))
        }
    }

}
