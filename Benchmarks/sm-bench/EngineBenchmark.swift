import ArgumentParser
import Foundation
import PodmanSandbox
import Synchronization
import VMM

/// `podman run --rm IMAGE true` with runc, crun and sm-runc as podman's runtime, and
/// the same container started by each runtime directly (`runc run` / `crun run` /
/// `sm-runc run` of one bundle, no engine), interleaved in one run, so the engine's own
/// overhead is visible next to the microVM's. podman+sm-runc runs through a wrapper
/// that adds `--debug --log`, so each run's path (snapshot or boot) and the VMM's
/// timeline are read from the runtime's own log. podman is private and registry-free (engines.md §8/§9, as in
/// Tests/GuestBootTests/PodmanTests.swift): its own containers.conf and storage in a
/// temporary directory, a busybox image made with `podman import`, no network setup.
struct EngineBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "engine",
        abstract: "Wall time of `podman run --rm IMAGE true` with runc, crun and sm-runc, and of each runtime's own `run` of the same bundle.")

    @Option(help: "Timed runs of each of the four commands (interleaved; the order alternates each round).") var runs = 3
    @Option(help: "Image name, imported into the private store as localhost/<image>.") var image = "sm-bench-bb"
    @Option(help: "The sm-runc binary (default: sm-runc beside sm-bench, i.e. the release build scripts/bench.sh makes).")
    var smRunc: String?
    @Option(help: "The runc binary.") var runc = "/usr/bin/runc"
    @Option(help: "The crun binary.") var crun = "/usr/bin/crun"
    @Option(help: "The podman binary.") var podman = "/usr/bin/podman"
    @Option(help: "A static busybox to build the image from.") var busybox = "/bin/busybox"
    @Option(help: "Deadline per command in seconds (the command is killed after it).") var deadline = 600.0
    @Option(help: "Directory in which the temporary work directory is made.") var directory: String?

    /// One series: a command run `runs` times.
    enum Series: Int, CaseIterable {
        case podmanRunc, podmanCrun, podmanSMRunc, runcRun, crunRun, smRuncRun
        var label: String {
            switch self {
            case .podmanRunc: "podman+runc"
            case .podmanCrun: "podman+crun"
            case .podmanSMRunc: "podman+sm-runc"
            case .runcRun: "runc run"
            case .crunRun: "crun run"
            case .smRuncRun: "sm-runc run"
            }
        }
    }

    struct Failure: Error, CustomStringConvertible { let description: String }

    func run() throws {
        guard runs >= 1 else { throw ValidationError("--runs must be at least 1") }
        let smRunc = try resolveSMRunc()
        let artifacts = try guestArtifacts(forBinary: smRunc)
        for tool in [podman, runc, crun, busybox] where access(tool, X_OK) != 0 {
            throw Failure(description: "\(tool) is not executable (scripts/setup-deps.sh installs podman, conmon, runc and crun)")
        }
        let parent = directory ?? FileManager.default.temporaryDirectory.path
        let work = Work(path: parent + "/sm-bench-engine-\(getpid())", podman: podman)
        let interrupts = Interrupts.install()
        defer {
            // Clean up first: a second interrupt meanwhile is still caught (and ignored).
            work.cleanUp(runtimes: [runc, crun, smRunc],
                         runtimeRoots: [(runc, work.runcRoot), (crun, work.crunRoot), (smRunc, work.smRuncRoot)])
            interrupts.cancel()
        }
        try work.prepare(busybox: busybox)
        let reference = "localhost/\(image)"

        // Header: versions, where sm-runc finds its guest, the host.
        let podmanVersion = firstLine(try work.execute([podman, "--version"]).stdout)
        let conmonVersion = access("/usr/bin/conmon", X_OK) == 0 ? firstLine(try work.execute(["/usr/bin/conmon", "--version"]).stdout) : "not found"
        let runcVersion = try work.execute([runc, "--version"]).stdout.split(separator: "\n").joined(separator: "; ")
        let crunVersion = firstLine(try work.execute([crun, "--version"]).stdout)
        let smRuncVersion = try work.execute([smRunc, "--version"]).stdout.split(separator: "\n").joined(separator: "; ")
        let hostKind = HostKind.detect()
        print("sm-bench engine: \(runs) timed run(s) of each command, interleaved (round by round; the order alternates each round)")
        print("  podman   \(podman): \(podmanVersion); conmon: \(conmonVersion)")
        print("  runc     \(runc): \(runcVersion)")
        print("  crun     \(crun): \(crunVersion)")
        print("  sm-runc  \(smRunc): \(smRuncVersion)")
        print("  guest    kernel \(artifacts.kernel)")
        print("           agent root \(artifacts.root)")
        print("           (where sm-runc looks by default: podman calls it with almost no environment, so this")
        print("           benchmark passes no SM_RUNC_* variables to any command either)")
        print("  host     \(hostKind.summary)")
        if hostKind == .emulating {
            print("  NOTE     this host's KVM is nested and emulating: absolute times are not hardware times (a microVM's")
            print("           guest kernel runs ~1000x slower than on hardware KVM); compare the columns of this run only")
        } else {
            print("  NOTE     absolute times depend on this machine and its load; compare the columns of this run only")
        }
        print("  work     \(work.path) (private podman config and store, bundle, runtime state; removed at the end)")

        // The image and the bundle: the same static busybox tree.
        let imported = try work.execute([podman, "import", "--change", "ENV PATH=/bin", "--change", "CMD [\"/bin/sh\"]",
                                         work.tarball, reference])
        guard imported.status == 0 else { throw Failure(description: "podman import failed: \(imported.stderr)") }
        try work.makeBundle(runc: runc)
        print("  image    \(reference): \(busybox) and its \(work.applets) applets (symlinks), /etc/passwd, /etc/group;")
        print("           \(shellJoin(["/bin/tar", "-C", work.rootfs, "-cf", work.tarball, "."]))")
        print("           \(shellJoin([podman, "import", "--change", "ENV PATH=/bin", "--change", "CMD [\"/bin/sh\"]", work.tarball, reference]))")
        print("  bundle   \(work.bundle): `runc spec`, process.args [\"true\"], terminal false, root.path \(work.rootfs) (read-only)")

        // podman+sm-runc through a wrapper that logs: each run's path and timeline.
        let wrapper = try work.loggingWrapper(smRunc: smRunc)
        print("  wrapper  \(wrapper): exec \(smRunc) --debug --log \(work.runtimeLog) \"$@\" (podman's runtime for podman+sm-runc)")

        // Direct runs get a fresh container id each (`n`: the round).
        let commands: [Series: (String) -> [String]] = [
            .podmanRunc: { _ in [podman, "--runtime", runc, "run", "--rm", reference, "true"] },
            .podmanCrun: { _ in [podman, "--runtime", crun, "run", "--rm", reference, "true"] },
            .podmanSMRunc: { _ in [podman, "--runtime", wrapper, "run", "--rm", reference, "true"] },
            .runcRun: { i in [runc, "--root", work.runcRoot, "run", "--bundle", work.bundle, "sm-bench-\(getpid())-runc-\(i)"] },
            .crunRun: { i in [crun, "--root", work.crunRoot, "run", "--bundle", work.bundle, "sm-bench-\(getpid())-crun-\(i)"] },
            .smRuncRun: { i in [smRunc, "--root", work.smRuncRoot, "run", "--bundle", work.bundle, "sm-bench-\(getpid())-sm-runc-\(i)"] },
        ]
        print("")
        print("commands (each with stdin /dev/null, stdout and stderr to files, and only this environment:")
        print("  \(work.environment.joined(separator: " ")))")
        for series in Series.allCases {
            print("  " + series.label.padding(toLength: 16, withPad: " ", startingAt: 0) + shellJoin(commands[series]!("<n>")))
        }
        print("  (podman as root passes the runtime no --root: runc keeps its state in /run/runc, sm-runc in /run/sm-runc;")
        print("   podman gives --log-format=json --log only to runtimes named runc or crun)")

        // Untimed: checks the private podman setup and the image before the microVMs.
        let preflight = try work.execute(commands[.podmanRunc]!("preflight"), deadline: deadline, interrupts: interrupts)
        guard preflight.status == 0 else {
            throw Failure(description: "preflight `podman run --rm \(reference) true` with runc failed (exit \(preflight.status)): \(preflight.stderr)")
        }
        try interrupts.check()
        print("")
        print("preflight (untimed): podman+runc run --rm ... true: exit 0 in \(formatFixed(preflight.seconds, digits: 3)) s")
        // crun refuses some hosts (e.g. hybrid cgroups: "cgroups in hybrid mode not
        // supported"); its series are left out then, and the reason printed.
        let crunPreflight = try work.execute(commands[.crunRun]!("preflight"), deadline: deadline, interrupts: interrupts)
        let skipped: Set<Series> = crunPreflight.status == 0 ? [] : [.podmanCrun, .crunRun]
        if skipped.isEmpty {
            print("preflight (untimed): crun run of the bundle: exit 0")
        } else {
            let reason = (crunPreflight.stderr + crunPreflight.stdout).split(separator: "\n").last.map(String.init) ?? "exit \(crunPreflight.status)"
            print("preflight (untimed): crun run of the bundle failed on this host (\(reason)): crun's series are left out")
        }
        fflush(nil)

        var results: [[Outcome?]] = Array(repeating: Array(repeating: nil, count: Series.allCases.count), count: runs)
        for round in 0..<runs {
            let order: [Series] = round % 2 == 0
                ? [.podmanRunc, .podmanCrun, .podmanSMRunc, .runcRun, .crunRun, .smRuncRun]
                : [.podmanSMRunc, .podmanCrun, .podmanRunc, .smRuncRun, .crunRun, .runcRun]
            var cells: [String] = []
            for series in order where !skipped.contains(series) {
                if series == .podmanSMRunc { unlink(work.runtimeLog) }
                var outcome = try work.execute(commands[series]!(String(round + 1)), deadline: deadline, interrupts: interrupts)
                if series == .podmanSMRunc {
                    outcome.runtimeLog = (try? String(contentsOfFile: work.runtimeLog, encoding: .utf8)) ?? ""
                }
                try interrupts.check()
                results[round][series.rawValue] = outcome
                cells.append("\(series.label) \(describe(outcome))")
                if outcome.status != 0 || outcome.timedOut {
                    print("  round \(round + 1) \(series.label) FAILED: \(outcome.timedOut ? "killed at the \(Int(deadline)) s deadline; " : "")exit \(outcome.status)")
                    for line in (outcome.stderr + outcome.stdout).split(separator: "\n").suffix(15) { print("    | " + line) }
                    fflush(nil)
                }
            }
            print("  round \(round + 1): " + cells.joined(separator: ", "))
            fflush(nil)  // progress as it comes, also into a pipe or a file
        }

        report(results)
    }

    // MARK: - Report

    func report(_ results: [[Outcome?]]) {
        func seconds(_ series: Series) -> [Double] {
            results.compactMap { $0[series.rawValue] }.filter(\.succeeded).map(\.seconds)
        }
        print("")
        print("summary: wall time in seconds, successful runs only (spawn to exit, CLOCK_MONOTONIC)")
        func line(_ cells: [String]) {
            let text = "  " + cells[0].padding(toLength: 30, withPad: " ", startingAt: 0)
                + cells.dropFirst().map { $0.padding(toLength: 11, withPad: " ", startingAt: 0) }.joined()
            print(text.replacingOccurrences(of: " +$", with: "", options: .regularExpression))
        }
        line(["", "n", "min", "median", "mean"])
        func statsRow(_ series: Series) {
            let values = seconds(series)
            line([series.label, "\(values.count)/\(results.count)", fixed(values.min()), fixed(median(values)), fixed(mean(values))])
        }
        func ratioRow(_ label: String, _ a: Series, _ b: Series) {
            let x = seconds(a), y = seconds(b)
            func ratio(_ p: Double?, _ q: Double?) -> String {
                guard let p, let q, q > 0 else { return "-" }
                return formatFixed(p / q, digits: 1) + "x"
            }
            line([label, "", ratio(x.min(), y.min()), ratio(median(x), median(y)), ratio(mean(x), mean(y))])
        }
        statsRow(.podmanRunc)
        statsRow(.podmanCrun)
        statsRow(.podmanSMRunc)
        ratioRow("  ratio sm-runc / runc", .podmanSMRunc, .podmanRunc)
        ratioRow("  ratio sm-runc / crun", .podmanSMRunc, .podmanCrun)
        statsRow(.runcRun)
        statsRow(.crunRun)
        statsRow(.smRuncRun)
        ratioRow("  ratio sm-runc / runc", .smRuncRun, .runcRun)
        ratioRow("  ratio sm-runc / crun", .smRuncRun, .crunRun)
        func overhead(_ engine: Series, _ direct: Series) -> String {
            guard let e = median(seconds(engine)), let d = median(seconds(direct)) else { return "-" }
            return (e >= d ? "+" : "") + formatFixed(e - d, digits: 3) + " s"
        }
        print("  engine overhead (podman run --rm minus the runtime's own run, medians): with runc \(overhead(.podmanRunc, .runcRun)),"
              + " with crun \(overhead(.podmanCrun, .crunRun)), with sm-runc \(overhead(.podmanSMRunc, .smRuncRun))")
        reportSnapshotShare(results.compactMap { $0[Series.podmanSMRunc.rawValue] }.filter(\.succeeded))
        print("  (the direct runs use `runc spec`'s config, not the one podman generates: other mounts and limits,")
        print("   so that difference is not purely the engine's; with sm-runc, microVM boots vary by seconds from run to run here)")
        let failures = results.flatMap { $0 }.compactMap { $0 }.filter { !$0.succeeded }.count
        if failures > 0 { print("  PROBLEM: \(failures) run(s) failed (left out of the figures; see above)") }
        print("  (nested emulating KVM here: absolute times are not hardware times; compare the columns, not the figures)")

        print("")
        print("per-run wall times (s)")
        let header = ["run"] + Series.allCases.map { $0.label.replacingOccurrences(of: " ", with: "-") }
        let rows = results.enumerated().map { index, row in
            ["\(index + 1)"] + row.map { outcome in
                guard let outcome else { return "-" }
                return outcome.succeeded ? formatFixed(outcome.seconds, digits: 3) : "fail"
            }
        }
        let widths = header.indices.map { column in ([header] + rows).map { $0[column].count }.max()! + 2 }
        for cells in [header] + rows {
            print(cells.enumerated().map { $1.padding(toLength: widths[$0], withPad: " ", startingAt: 0) }.joined()
                .trimmingCharacters(in: .whitespaces))
        }
    }

    /// podman+sm-runc, from the runtime's own --debug log of each run: which path the
    /// container took (snapshot or boot) and how much of podman's wall time the VMM's
    /// life and its restore were.
    func reportSnapshotShare(_ outcomes: [Outcome]) {
        print("")
        print("podman+sm-runc, from the runtime's --debug log (the wrapper's):")
        var restored = 0, booted = 0
        var restoreShares: [Double] = [], vmmShares: [Double] = [], restoreMs: [Double] = [], vmmSeconds: [Double] = []
        for outcome in outcomes {
            let log = outcome.runtimeLog
            if log.contains("started from snapshot") { restored += 1 } else if log.contains("booted:") { booted += 1 }
            if let ms = Self.number(after: "(restore ", in: log) {
                restoreMs.append(ms)
                restoreShares.append(ms / 1000 / outcome.seconds)
            }
            if let total = Self.number(after: "(total ", in: log) {
                vmmSeconds.append(total / 1000)
                vmmShares.append(total / 1000 / outcome.seconds)
            }
        }
        print("  path: \(restored) of \(outcomes.count) run(s) started from the snapshot, \(booted) booted")
        func percent(_ x: Double?) -> String { x.map { formatFixed($0 * 100, digits: 1) + " %" } ?? "-" }
        print("  the restore (KVM VM, RAM map, devices, vCPU state): median \(fixed(median(restoreMs).map { $0 / 1000 })) s, "
              + "\(percent(median(restoreShares))) of podman's wall time")
        print("  the VMM's whole container (set-up to guest end, the timeline's total): median \(fixed(median(vmmSeconds))) s, "
              + "\(percent(median(vmmShares))) of podman's wall time (the rest: podman, conmon, the runtime's other calls)")
    }

    /// The number right after `marker` in `text` ("... (restore 9.54 ms)" -> 9.54).
    static func number(after marker: String, in text: String) -> Double? {
        guard let range = text.range(of: marker, options: .backwards) else { return nil }
        let digits = text[range.upperBound...].prefix { $0.isNumber || $0 == "." }
        return Double(digits)
    }

    func describe(_ outcome: Outcome) -> String {
        formatFixed(outcome.seconds, digits: 3) + " s" + (outcome.succeeded ? "" : " (FAILED)")
    }

    // MARK: - sm-runc and its guest

    func resolveSMRunc() throws -> String {
        let path: String
        if let smRunc {
            path = smRunc.hasPrefix("/") ? smRunc : FileManager.default.currentDirectoryPath + "/" + smRunc
        } else {
            guard let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") else {
                throw Failure(description: "cannot read /proc/self/exe; pass --sm-runc")
            }
            path = (exe as NSString).deletingLastPathComponent + "/sm-runc"
        }
        guard access(path, X_OK) == 0 else {
            throw Failure(description: "\(path) is not executable: build it (scripts/bench.sh engine builds the release sm-runc) or pass --sm-runc")
        }
        return path
    }

    /// Where this sm-runc finds its guest kernel and agent root without SM_RUNC_* variables
    /// (GuestArtifacts: `sm-runc-guest/` beside the resolved binary, then /usr/local/lib/sm-runc).
    func guestArtifacts(forBinary binary: String) throws -> (kernel: String, root: String) {
        let real = (try? realPath(binary)) ?? binary
        let directories = [(real as NSString).deletingLastPathComponent + "/sm-runc-guest", "/usr/local/lib/sm-runc"]
        guard let kernelDirectory = directories.first(where: { access($0 + "/vmlinux", R_OK) == 0 }),
              let rootDirectory = directories.first(where: { access($0 + "/root/sm-init", X_OK) == 0 }) else {
            throw Failure(description: "no guest kernel (vmlinux) and agent root (root/sm-init) in \(directories.joined(separator: " or ")): "
                + "podman calls sm-runc without SM_RUNC_KERNEL/SM_RUNC_AGENT, so they must be there "
                + "(scripts/bench.sh links the debug build's sm-runc-guest/ beside the release sm-runc)")
        }
        let kernel = kernelDirectory + "/vmlinux"
        let target = (try? realPath(kernel)).map { $0 == kernel ? "" : " -> \($0)" } ?? ""
        return (kernel + target, rootDirectory + "/root")
    }

    func realPath(_ path: String) throws -> String {
        guard let resolved = realpath(path, nil) else { throw Failure(description: "realpath \(path): \(String(cString: strerror(errno)))") }
        defer { free(resolved) }
        return String(cString: resolved)
    }
}

// MARK: - Running tools

/// One command's result. `seconds` is spawn to exit (before reaping), CLOCK_MONOTONIC.
struct Outcome {
    var status: Int32
    var seconds: Double
    var stdout: String
    var stderr: String
    var timedOut = false
    /// podman+sm-runc: the runtime's --debug log of the run.
    var runtimeLog = ""
    var succeeded: Bool { status == 0 && !timedOut }
}

/// SIGINT/SIGTERM to the benchmark: stop the command that runs, then clean up (the
/// `defer` in run()) instead of leaving podman's store and containers behind.
/// `@unchecked Sendable`: `sources` is written once, in `install`, before any handler
/// runs, and cancelled on the thread that installed it; the rest is atomic or locked.
final class Interrupts: @unchecked Sendable {
    struct Interrupted: Error, CustomStringConvertible { var description: String { "interrupted" } }
    let received = Atomic<Int32>(0)
    /// The command running now (0: none); the deadline watchdog and the signal handler kill it.
    let child = Mutex<pid_t>(0)
    private var sources: [DispatchSourceSignal] = []

    static func install() -> Interrupts {
        let interrupts = Interrupts()
        // Blocked here (and so in the threads started from here on), not just ignored: an
        // ignored signal that the main thread does not block is discarded before
        // Dispatch's signalfd can read it. Children get an empty mask (see execute).
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGINT)
        sigaddset(&set, SIGTERM)
        pthread_sigmask(SIG_BLOCK, &set, nil)
        interrupts.sources = [SIGINT, SIGTERM].map { number -> DispatchSourceSignal in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number)
            source.setEventHandler {
                // podman waits for a booting microVM on SIGTERM; a second interrupt kills it
                // (cleanUp's `podman rm -a -f` then ends what it left behind).
                let first = interrupts.received.exchange(number, ordering: .sequentiallyConsistent) == 0
                interrupts.kill(first ? SIGTERM : SIGKILL)
            }
            source.resume()
            return source
        }
        return interrupts
    }

    /// posix_spawn of `argv` with `environment`, default signal dispositions and an
    /// empty mask (`FileOutputCommand.childAttributes`); the child is recorded under the lock, so an
    /// interrupt or a deadline can kill it (the caller clears `child` before reaping).
    func spawn(_ argv: [String], environment: [String], actions: inout posix_spawn_file_actions_t) throws -> pid_t {
        var attributes = FileOutputCommand.childAttributes()
        defer { posix_spawnattr_destroy(&attributes) }
        let cArguments = argv.map { strdup($0) } + [nil]
        let cEnvironment = environment.map { strdup($0) } + [nil]
        defer { cArguments.forEach { free($0) }; cEnvironment.forEach { free($0) } }
        var pid: pid_t = 0
        let rc = child.withLock { child -> Int32 in
            let rc = posix_spawn(&pid, argv[0], &actions, &attributes, cArguments, cEnvironment)
            if rc == 0 { child = pid }
            return rc
        }
        guard rc == 0 else { throw EngineBenchmark.Failure(description: "posix_spawn \(argv[0]): \(String(cString: strerror(rc)))") }
        return pid
    }

    func kill(_ signal: Int32) {
        child.withLock { pid in if pid > 0 { _ = Glibc.kill(pid, signal) } }
    }

    func check() throws {
        if received.load(ordering: .sequentiallyConsistent) != 0 { throw Interrupted() }
    }

    func cancel() {
        sources.forEach { $0.cancel() }
        sources = []
        signal(SIGINT, SIG_DFL)
        signal(SIGTERM, SIG_DFL)
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGINT)
        sigaddset(&set, SIGTERM)
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
    }
}

/// The work directory: private podman configuration and store, the busybox tree and
/// its tarball, the bundle, the runtimes' state roots for the direct runs.
struct Work {
    let path: String
    let podman: String
    var config: String { path + "/podman" }
    var rootfs: String { path + "/rootfs" }
    var tarball: String { path + "/image.tar" }
    var bundle: String { path + "/bundle" }
    var runcRoot: String { path + "/runc-root" }
    var smRuncRoot: String { path + "/sm-runc-root" }
    var crunRoot: String { path + "/crun-root" }
    /// The --debug log of podman+sm-runc's runtime calls (`loggingWrapper`), one run at a time.
    var runtimeLog: String { path + "/sm-runc-runtime.log" }

    /// A runtime for podman that is sm-runc with `--debug --log runtimeLog` first.
    func loggingWrapper(smRunc: String) throws -> String {
        let wrapper = path + "/sm-runc-logged"
        try "#!/bin/sh\nexec \(smRunc) --debug --log \(runtimeLog) \"$@\"\n".write(toFile: wrapper, atomically: true, encoding: .utf8)
        guard chmod(wrapper, 0o755) == 0 else { throw EngineBenchmark.Failure(description: "chmod \(wrapper): errno \(errno)") }
        return wrapper
    }
    var applets: Int { (try? FileManager.default.contentsOfDirectory(atPath: rootfs + "/bin").count - 1) ?? 0 }

    /// engines.md §8: no network namespace setup (`--network none`).
    var sandbox: PodmanSandbox { PodmanSandbox(directory: config, networkNone: true) }
    var environment: [String] { sandbox.environmentList }

    func prepare(busybox: String) throws {
        let fm = FileManager.default
        try sandbox.write()
        for dir in ["bin", "etc", "proc", "sys", "dev", "tmp", "root"] {
            try fm.createDirectory(atPath: rootfs + "/" + dir, withIntermediateDirectories: true)
        }
        chmod(rootfs + "/tmp", 0o1777)
        try fm.copyItem(atPath: busybox, toPath: rootfs + "/bin/busybox")
        let list = try execute([busybox, "--list"])
        guard list.status == 0 else { throw EngineBenchmark.Failure(description: "\(busybox) --list: \(list.stderr)") }
        // The list includes `busybox` itself: never link bin/busybox to itself.
        for applet in Set(list.stdout.split(separator: "\n").map(String.init))
        where applet != "busybox" && !applet.isEmpty && !applet.contains("/") {
            try fm.createSymbolicLink(atPath: rootfs + "/bin/" + applet, withDestinationPath: "busybox")
        }
        try "root:x:0:0:root:/root:/bin/sh\n".write(toFile: rootfs + "/etc/passwd", atomically: true, encoding: .utf8)
        try "root:x:0:\n".write(toFile: rootfs + "/etc/group", atomically: true, encoding: .utf8)
        let tar = try execute(["/bin/tar", "-C", rootfs, "-cf", tarball, "."])
        guard tar.status == 0 else { throw EngineBenchmark.Failure(description: "tar: \(tar.stderr)") }
    }

    /// `runc spec`, then `args` (default `true`) without a terminal on the busybox tree
    /// (absolute, read-only), in `at` (default: `bundle`); `binds` (host directory,
    /// container path) are added as read-write bind mounts.
    func makeBundle(runc: String, args: [String] = ["true"], at directory: String? = nil,
                    binds: [(source: String, destination: String)] = []) throws {
        let bundle = directory ?? self.bundle
        try FileManager.default.createDirectory(atPath: bundle, withIntermediateDirectories: true)
        let spec = try execute([runc, "spec", "--bundle", bundle])
        guard spec.status == 0 else { throw EngineBenchmark.Failure(description: "runc spec: \(spec.stderr)") }
        let file = URL(fileURLWithPath: bundle + "/config.json")
        guard var config = try JSONSerialization.jsonObject(with: Data(contentsOf: file)) as? [String: Any],
              var process = config["process"] as? [String: Any], var root = config["root"] as? [String: Any] else {
            throw EngineBenchmark.Failure(description: "runc spec wrote an unexpected config.json")
        }
        process["args"] = args
        process["terminal"] = false
        root["path"] = rootfs
        root["readonly"] = true
        config["process"] = process
        config["root"] = root
        if !binds.isEmpty {
            var mounts = config["mounts"] as? [[String: Any]] ?? []
            for bind in binds {
                mounts.append(["destination": bind.destination, "type": "bind", "source": bind.source, "options": ["rbind", "rw"]])
            }
            config["mounts"] = mounts
        }
        try JSONSerialization.data(withJSONObject: config, options: [.prettyPrinted, .sortedKeys]).write(to: file)
    }

    /// posix_spawn + waitpid (Foundation's Process hung on podman before): stdin
    /// /dev/null, stdout and stderr to files (podman leaves conmon behind, so nothing
    /// may wait for pipes to close), our fixed environment, a deadline.
    /// `extraEnvironment` is added to it; `stdoutFile` keeps stdout in that file (not removed).
    func execute(_ argv: [String], deadline: Double = 120, interrupts: Interrupts? = nil,
                 extraEnvironment: [String] = [], stdoutFile: String? = nil) throws -> Outcome {
        let tag = "\(UInt32.random(in: 0...UInt32.max))"
        let files = [stdoutFile ?? "\(path)/call-\(tag).out", "\(path)/call-\(tag).err"]
        defer { (stdoutFile == nil ? files : [files[1]]).forEach { unlink($0) } }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, files[0], O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_addopen(&actions, 2, files[1], O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        let watch = interrupts ?? Interrupts()
        let start = monotonicSeconds()
        let pid = try watch.spawn(argv, environment: environment + extraEnvironment, actions: &actions)
        let timedOut = Atomic<Bool>(false)
        let watchdog = DispatchSource.makeTimerSource(queue: .global())
        watchdog.schedule(deadline: .now() + deadline)
        watchdog.setEventHandler {
            timedOut.store(true, ordering: .sequentiallyConsistent)
            watch.kill(SIGKILL)
        }
        watchdog.resume()
        // Wait for the exit without reaping: the pid stays ours until `child` is cleared,
        // so neither the watchdog nor a signal can hit a reused pid.
        var info = siginfo_t()
        while waitid(P_PID, id_t(pid), &info, WEXITED | WNOWAIT) < 0 && errno == EINTR {}
        let seconds = monotonicSeconds() - start
        watchdog.cancel()
        watch.child.withLock { $0 = 0 }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let code = status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return Outcome(status: code, seconds: seconds,
                       stdout: (try? String(contentsOfFile: files[0], encoding: .utf8)) ?? "",
                       stderr: (try? String(contentsOfFile: files[1], encoding: .utf8)) ?? "",
                       timedOut: timedOut.load(ordering: .sequentiallyConsistent))
    }

    /// Leaves nothing behind: containers, podman's private store (`podman system reset`
    /// there), the direct runs' leftover containers, mounts under the work directory, files.
    func cleanUp(runtimes: [String], runtimeRoots: [(String, String)]) {
        let fm = FileManager.default
        guard fm.fileExists(atPath: path) else { return }
        if fm.fileExists(atPath: config + "/containers.conf") {
            for runtime in runtimes { _ = try? execute([podman, "--runtime", runtime, "rm", "-a", "-f", "-t", "0"]) }
            if let reset = try? execute([podman, "system", "reset", "-f"]), reset.status != 0 {
                print("cleanup: podman system reset failed (exit \(reset.status)): \(reset.stderr)")
            }
        }
        for (runtime, root) in runtimeRoots where fm.fileExists(atPath: root) {
            let ids = (try? execute([runtime, "--root", root, "list", "-q"]))?.stdout.split(separator: "\n") ?? []
            for id in ids { _ = try? execute([runtime, "--root", root, "delete", "--force", String(id)]) }
        }
        // Anything podman left mounted under the store: detach it (deepest first) rather
        // than delete through it.
        let mounts = ((try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)) ?? "")
            .split(separator: "\n").compactMap { line -> String? in
                let fields = line.split(separator: " ")
                guard fields.count > 4 else { return nil }
                let point = fields[4].replacingOccurrences(of: "\\040", with: " ")
                return point == path || point.hasPrefix(path + "/") ? point : nil
            }
        for point in mounts.sorted(by: { $0.count > $1.count }) {
            if umount2(point, Int32(MNT_DETACH)) != 0 { print("cleanup: umount \(point): \(String(cString: strerror(errno)))") }
        }
        do { try fm.removeItem(atPath: path) } catch { print("cleanup: removing \(path): \(error)") }
    }
}

func monotonicSeconds() -> Double {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
}

/// A command line as one would type it (single quotes where the shell needs them).
func shellJoin(_ argv: [String]) -> String {
    argv.map { word in
        word.isEmpty || word.contains(where: { " \"'$[]*?;&|<>()".contains($0) })
            ? "'" + word.replacingOccurrences(of: "'", with: "'\\''") + "'" : word
    }.joined(separator: " ")
}
