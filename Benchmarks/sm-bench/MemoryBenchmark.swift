import ArgumentParser
import Foundation
import VMM

/// Issue 8's figures: what each idle busybox container costs in host memory, as
/// containers are added one by one up to N: the VMM's own memory (PSS excluding guest
/// RAM; Firecracker publishes under 5 MiB), guest RAM actually resident, and the
/// totals. Containers start from the snapshot (made ahead, untimed) unless --boot.
struct MemoryBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "memory",
        abstract: "Host memory per idle container (VMM PSS without guest RAM, resident guest RAM) from 1 to N containers.")

    @Option(help: "Containers, started one after another.") var containers = 10
    @Flag(help: "Boot every container instead of restoring the snapshot.") var boot = false
    @Option(help: "Guest RAM in MiB (annotation io.sm-runc.memory_mib).") var memoryMib = 128
    @Option(help: "The sm-runc binary (default: sm-runc beside sm-bench).") var smRunc: String?
    @Option(help: "A static busybox to build the rootfs from.") var busybox = "/bin/busybox"
    @Option(help: "Deadline per container start in seconds.") var deadline = 600.0

    struct Failure: Error, CustomStringConvertible { let description: String }

    func run() throws {
        guard containers >= 1 else { throw ValidationError("--containers must be at least 1") }
        let engine = EngineBenchmark.parseOrExit(smRunc.map { ["--sm-runc", $0] } ?? [])
        let smRunc = try engine.resolveSMRunc()
        let work = Work(path: FileManager.default.temporaryDirectory.path + "/sm-bench-memory-\(getpid())", podman: "/usr/bin/podman")
        let cache = work.path + "/cache"
        let interrupts = Interrupts.install()
        var started: [(id: String, pid: pid_t)] = []
        defer {
            for entry in started { _ = try? work.execute([smRunc, "--root", work.smRuncRoot, "delete", "--force", entry.id]) }
            work.cleanUp(runtimes: [], runtimeRoots: [(smRunc, work.smRuncRoot)])
            interrupts.cancel()
        }
        try work.prepare(busybox: busybox)
        try work.makeBundle(runc: "/usr/bin/runc", args: ["sh", "-c", "echo ready; exec sleep 1000000"])
        try setAnnotation(bundle: work.bundle, "io.sm-runc.memory_mib", "\(memoryMib)")
        try FileManager.default.createDirectory(atPath: cache, withIntermediateDirectories: true)
        let environment = ["SM_RUNC_CACHE=\(cache)", "SM_RUNC_SNAPSHOT=\(boot ? "off" : "restore")"]

        print("sm-bench memory: \(containers) idle busybox containers (sh -c 'echo ready; exec sleep 1000000'), "
            + "\(memoryMib) MiB guest RAM, 1 vCPU, \(boot ? "each booted" : "each restored from one snapshot")")
        print("  sm-runc  \(smRunc): \(firstLine(try work.execute([smRunc, "--version"]).stdout))")
        print("  host     \(HostKind.detect().summary)")
        if !boot {
            let made = try work.execute([smRunc, "snapshot", "--memory-mib", "\(memoryMib)"], deadline: deadline, interrupts: interrupts,
                                        extraEnvironment: ["SM_RUNC_CACHE=\(cache)"])
            guard made.status == 0 else { throw Failure(description: "sm-runc snapshot failed (exit \(made.status)): \(made.stderr)") }
            print("  snapshot \(made.stdout.split(separator: "\n").joined(separator: "; "))")
        }
        print("  measured after each start, once the new container printed ready plus 2 s; /proc/PID/smaps of every VMM")
        print("")
        print("  " + ["n", "VMM PSS each", "VMM private each", "VMM PSS total", "guest RAM RSS each", "guest RAM PSS total", "all PSS total"]
            .map { $0.padding(toLength: 19, withPad: " ", startingAt: 0) }.joined())
        fflush(nil)
        var last: [MemoryUse] = []
        for n in 1...containers {
            let id = "bench-mem-\(n)"
            let out = work.path + "/\(id).out", pidFile = work.path + "/\(id).pid"
            let run = try work.execute([smRunc, "--root", work.smRuncRoot, "run", "-d", "--pid-file", pidFile, "--bundle", work.bundle, id],
                                       deadline: deadline, interrupts: interrupts, extraEnvironment: environment, stdoutFile: out)
            try interrupts.check()
            guard run.status == 0, let pid = pid_t((try? String(contentsOfFile: pidFile, encoding: .utf8)) ?? "") else {
                throw Failure(description: "container \(n): exit \(run.status): \(run.stderr)")
            }
            started.append((id, pid))
            let began = monotonicSeconds()
            while !((try? String(contentsOfFile: out, encoding: .utf8)) ?? "").contains("ready") {
                try interrupts.check()
                guard monotonicSeconds() - began < deadline else { throw Failure(description: "\(id) did not print ready") }
                usleep(200_000)
            }
            sleep(2)
            last = try started.map { try MemoryUse.of($0.pid, guestRAMMiB: memoryMib) }
            let vmm = last.map(\.vmmPss).reduce(0, +), ram = last.map(\.guestRAMPss).reduce(0, +)
            let resident = last.map(\.guestRAMRss).reduce(0, +)
            let own = last.map(\.vmmPrivate).reduce(0, +)
            print("  " + ["\(n)", mib(vmm / n), mib(own / n), mib(vmm), mib(resident / n), mib(ram), mib(vmm + ram)]
                .map { $0.padding(toLength: 19, withPad: " ", startingAt: 0) }.joined())
            fflush(nil)
        }
        print("")
        print("  per VMM at \(containers) (pid: VMM PSS / guest RAM RSS / guest RAM PSS, MiB): "
            + last.map { "\($0.pid): \(mib($0.vmmPss)) / \(mib($0.guestRAMRss)) / \(mib($0.guestRAMPss))" }.joined(separator: ", "))
        print("  VMM PSS = PSS of every mapping but guest RAM (code and libraries shared among the VMMs count once in total);")
        print("  VMM private = pages of those mappings no other process maps (heap, stacks, KVM-visible state: what one more VMM adds)")
        print("  guest RAM RSS = guest pages resident on the host; PSS shares the snapshot's page-cache pages among the VMMs")
    }

    func mib(_ kb: Int) -> String { formatFixed(Double(kb) / 1024, digits: 2) }

    func setAnnotation(bundle: String, _ key: String, _ value: String) throws {
        let file = URL(fileURLWithPath: bundle + "/config.json")
        guard var config = try JSONSerialization.jsonObject(with: Data(contentsOf: file)) as? [String: Any] else {
            throw Failure(description: "\(file.path): not a JSON object")
        }
        var annotations = config["annotations"] as? [String: String] ?? [:]
        annotations[key] = value
        config["annotations"] = annotations
        try JSONSerialization.data(withJSONObject: config, options: [.prettyPrinted, .sortedKeys]).write(to: file)
    }
}
