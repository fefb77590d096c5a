import ArgumentParser
import Foundation
import Synchronization
import ReferenceVMM
import VMM

/// File I/O inside the guest on a virtio-fs root share: our VMM's device and FUSE
/// server vs `qemu -M microvm` with Debian's virtiofsd, same kernel, same busybox
/// rootfs, same script, in one run. The guest times itself (/proc/uptime: Debian's
/// busybox `date` has no %N) and prints one `FSBENCH` line per figure.
struct FsBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fs",
        abstract: "Sequential write/read throughput and small-file create rate on a virtio-fs root, ours vs qemu microvm + virtiofsd.")

    @Option(help: "Boots per VMM.") var runs = 1
    @Option(help: "Guest RAM in MiB.") var memory = 128
    @Option(help: "Per-boot deadline in seconds.") var deadline = 900.0
    @Option(help: "Size of the sequential file in MiB (dd bs=1M).") var sizeMiB = 64
    @Option(help: "Small files to create.") var files = 200
    @Option(help: "Directory in which the temporary rootfs trees are made.") var directory: String?
    @Flag(help: "Skip qemu (ours only).") var noQemu = false
    @Flag(help: "Print each guest's console.") var verbose = false

    static let applets = ["sh", "mount", "dd", "sync", "reboot"]
    static let tag = "rootfs"
    /// Init's argument as a bare word, not after `--`: qemu microvm appends its
    /// `virtio_mmio.device=` entries to the command line (see QEMUMicrovmVirtioFs).
    static let scriptName = "fsbench"

    /// One boot's figures, from its FSBENCH lines.
    struct Figures {
        var writeSeconds: Double?
        var readSeconds: Double?
        var createSeconds: Double?
        var filesCreated: Int?
        var execSeconds: Double?
        var problems: [String] = []
        var wallSeconds = 0.0
        var hostCPUSeconds = 0.0
        /// Ours: CPU in KVM_RUN, and exits to user space by reason. qemu: virtiofsd's CPU.
        var kvmRunCPUSeconds: Double?
        var serverCPUSeconds: Double?
        var exits: [String: Int] = [:]
    }

    var script: String {
        let bytes = sizeMiB << 20
        return """
            #!/bin/sh
            # sm-bench fs: timed with /proc/uptime (10 ms); one FSBENCH line per figure.
            mount -t proc proc /proc
            now() { read up rest < /proc/uptime; c=$(( ${up%.*} * 100 + 1${up#*.} - 100 )); }
            now; echo "FSBENCH start uptime_cs=$c"
            # One fork+exec of busybox dd moving no data: included in the dd figures below.
            now; t0=$c
            dd if=/dev/zero of=/dev/null bs=1M count=0 2>/dev/null
            now; echo "FSBENCH exec centiseconds=$((c - t0))"
            now; t0=$c
            dd if=/dev/zero of=/bench/seq bs=1M count=\(sizeMiB) 2>/dev/null; s=$?
            sync
            now; echo "FSBENCH write bytes=\(bytes) centiseconds=$((c - t0)) status=$s"
            echo 3 > /proc/sys/vm/drop_caches
            # Bring busybox's text back (dropped with the rest) so the read times the file.
            dd if=/dev/zero of=/dev/null bs=1M count=0 2>/dev/null
            now; t0=$c
            dd if=/bench/seq of=/dev/null bs=1M 2>/dev/null; s=$?
            now; echo "FSBENCH read bytes=\(bytes) centiseconds=$((c - t0)) status=$s"
            now; t0=$c
            i=0
            while [ $i -lt \(files) ]; do echo x > /bench/small/f$i || break; i=$((i + 1)); done
            now; echo "FSBENCH create files=$i centiseconds=$((c - t0))"
            echo "FSBENCH done"
            reboot -f

            """
    }

    func run() throws {
        let kernel = try GuestArtifacts.kernel()
        let hostKind = HostKind.detect()
        print("sm-bench fs: \(runs) boot(s) per VMM, \(memory) MiB, 1 vCPU; \(sizeMiB) MiB sequential, \(files) small files")
        print("  kernel  \(kernel)")
        print("  host    \(hostKind.summary)")
        print("  rootfs  static busybox (/bin/busybox) tree, fresh per boot, under \(directory ?? FileManager.default.temporaryDirectory.path)")
        print("  timing  guest /proc/uptime (10 ms): Debian's busybox `date` prints %N literally")
        // The same parameters our VMM gives a root-share guest, minus its virtio_mmio.device= entries.
        let parameters = MachineConfiguration.baseKernelParameters + hostKind.kernelWorkarounds
            + ["root=\(Self.tag)", "rootfstype=virtiofs", "rw", "init=/bin/sh", "/\(Self.scriptName)"]

        var ours: [Figures] = []
        var qemu: [Figures] = []
        var oursCommandLine = ""
        var qemuCommands: (virtiofsd: String, qemu: String)?
        for i in 1...runs {
            do {
                let (figures, commandLine) = try bootOurs(kernel: kernel)
                oursCommandLine = commandLine
                ours.append(figures)
                print("  run \(i) ours: \(summary(figures))")
            }
            if !noQemu {
                let (figures, commands) = try bootQemu(kernel: kernel, parameters: parameters)
                qemuCommands = commands
                qemu.append(figures)
                print("  run \(i) qemu + virtiofsd: \(summary(figures))")
            }
        }
        print("")
        report(ours: ours, qemu: qemu)
        print("")
        print("commands")
        print("  ours: in-process Machine, share `\(Self.tag)` read-write, kernel command line:")
        print("    \(oursCommandLine)")
        if let qemuCommands {
            print("  virtiofsd: \(QEMUMicrovmVirtioFs.virtiofsd) \(qemuCommands.virtiofsd)")
            print("  qemu: \(QEMUMicrovm.binary) \(qemuCommands.qemu)")
        }
        print("  guest script (/\(Self.scriptName), run as `init=/bin/sh /\(Self.scriptName)`):")
        for line in script.split(separator: "\n") { print("    " + line) }
    }

    // MARK: - Boots

    func makeTree() throws -> URL {
        let fm = FileManager.default
        let parent = directory.map { URL(fileURLWithPath: $0) } ?? fm.temporaryDirectory
        let top = parent.appendingPathComponent("sm-bench-fs-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        let rootfs = top.appendingPathComponent("rootfs")
        for dir in ["bin", "dev", "proc", "sys", "tmp", "bench/small"] {
            try fm.createDirectory(at: rootfs.appendingPathComponent(dir), withIntermediateDirectories: true)
        }
        try fm.copyItem(atPath: "/bin/busybox", toPath: rootfs.appendingPathComponent("bin/busybox").path)
        for applet in Self.applets {
            try fm.createSymbolicLink(atPath: rootfs.appendingPathComponent("bin/\(applet)").path, withDestinationPath: "busybox")
        }
        let scriptPath = rootfs.appendingPathComponent(Self.scriptName).path
        try script.write(toFile: scriptPath, atomically: false, encoding: .utf8)
        try fm.setAttributes([.posixPermissions: 0o755], ofItemAtPath: scriptPath)
        return top
    }

    func bootOurs(kernel: String) throws -> (Figures, String) {
        let top = try makeTree()
        defer { try? FileManager.default.removeItem(at: top) }
        let rootfs = top.appendingPathComponent("rootfs")
        let console = Mutex([UInt8]())
        var configuration = MachineConfiguration(kernelPath: kernel)
        configuration.shares = [.init(tag: Self.tag, hostPath: rootfs.path, readOnly: false)]
        configuration.rootShare = (Self.tag, "/bin/sh")
        configuration.extraKernelParameters = ["/\(Self.scriptName)"]
        configuration.memoryMiB = memory
        configuration.deadlineSeconds = deadline
        configuration.consoleOutput = { bytes in console.withLock { if $0.count < 1 << 20 { $0 += bytes } } }
        let start = Date()
        let report = try Machine(configuration).run()
        let text = String(decoding: console.withLock { $0 }, as: UTF8.self)
        var figures = parse(text)
        figures.wallSeconds = Date().timeIntervalSince(start)
        figures.hostCPUSeconds = report.processCPUSeconds
        figures.kvmRunCPUSeconds = report.kvmRunCPUSeconds
        figures.exits = report.exits
        if report.exit != .reset { figures.problems.append("guest ended: \(report.exit)") }
        check(rootfs: rootfs, &figures)
        if verbose || !figures.problems.isEmpty { printConsole("ours", text) }
        return (figures, report.commandLine)
    }

    func bootQemu(kernel: String, parameters: [String]) throws -> (Figures, (virtiofsd: String, qemu: String)) {
        let top = try makeTree()
        defer { try? FileManager.default.removeItem(at: top) }
        let rootfs = top.appendingPathComponent("rootfs")
        var reference = QEMUMicrovmVirtioFs(kernel: kernel, sharedDirectory: rootfs.path, kernelParameters: parameters,
                                            workDirectory: top.appendingPathComponent("virtiofsd").path)
        reference.tag = Self.tag
        reference.memoryMiB = memory
        let commands = (virtiofsd: reference.virtiofsdArguments.map(shellQuote).joined(separator: " "),
                        qemu: reference.qemuArguments.map(shellQuote).joined(separator: " "))
        let result = try reference.run(deadline: deadline)
        var figures = parse(result.console)
        figures.wallSeconds = result.wallSeconds
        figures.hostCPUSeconds = result.hostCPUSeconds
        figures.serverCPUSeconds = result.virtiofsdCPUSeconds
        if result.timedOut { figures.problems.append("qemu killed at the \(Int(deadline)) s deadline") }
        if result.virtiofsdExitStatus != 0 {
            figures.problems.append("virtiofsd exit status \(result.virtiofsdExitStatus): \(result.virtiofsdLog)")
        }
        check(rootfs: rootfs, &figures)
        if verbose || !figures.problems.isEmpty { printConsole("qemu", result.console) }
        return (figures, commands)
    }

    /// What the guest wrote must be on the host.
    func check(rootfs: URL, _ figures: inout Figures) {
        let fm = FileManager.default
        let size = (try? fm.attributesOfItem(atPath: rootfs.appendingPathComponent("bench/seq").path)[.size]) as? Int
        if size != sizeMiB << 20 { figures.problems.append("host sees bench/seq of \(size.map(String.init) ?? "no") bytes") }
        let created = (try? fm.contentsOfDirectory(atPath: rootfs.appendingPathComponent("bench/small").path).count) ?? 0
        if created != files { figures.problems.append("host sees \(created) of \(files) small files") }
    }

    func parse(_ console: String) -> Figures {
        var figures = Figures()
        var done = false
        for raw in console.split(whereSeparator: \.isNewline) {
            let line = raw.trimmingCharacters(in: .whitespaces)
            guard line.hasPrefix("FSBENCH ") else { continue }
            let words = line.split(separator: " ").dropFirst()
            guard let name = words.first else { continue }
            var values: [String: Int] = [:]
            for word in words.dropFirst() {
                let pair = word.split(separator: "=", maxSplits: 1)
                if pair.count == 2, let value = Int(pair[1]) { values[String(pair[0])] = value }
            }
            let seconds = values["centiseconds"].map { Double($0) / 100 }
            if let status = values["status"], status != 0 { figures.problems.append("\(name): dd exit status \(status)") }
            switch name {
            case "exec": figures.execSeconds = seconds
            case "write": figures.writeSeconds = seconds
            case "read": figures.readSeconds = seconds
            case "create":
                figures.createSeconds = seconds
                figures.filesCreated = values["files"]
            case "done": done = true
            default: break
            }
        }
        if !done { figures.problems.append("the guest script did not finish") }
        return figures
    }

    // MARK: - Report

    var megabytes: Double { Double(sizeMiB) }

    func summary(_ f: Figures) -> String {
        "write \(rate(megabytes, f.writeSeconds)) MiB/s, read \(rate(megabytes, f.readSeconds)) MiB/s, "
            + "create \(rate(Double(f.filesCreated ?? 0), f.createSeconds)) files/s; wall \(formatFixed(f.wallSeconds, digits: 1)) s"
            + (f.problems.isEmpty ? "" : "; PROBLEMS: " + f.problems.joined(separator: "; "))
    }

    func report(ours: [Figures], qemu: [Figures]) {
        let columns = qemu.isEmpty ? ["ours"] : ["ours", "qemu+virtiofsd", "ours/qemu"]
        print("inside the guest, virtio-fs root share (median of \(runs) boot(s); per-boot values in brackets)")
        func line(_ label: String, _ cells: [String]) {
            print("  " + label.padding(toLength: 38, withPad: " ", startingAt: 0)
                  + cells.map { $0.padding(toLength: max(27, $0.count + 2), withPad: " ", startingAt: 0) }.joined())
        }
        line("", columns)
        func row(_ label: String, unit: String, _ value: (Figures) -> Double?) {
            let a = ours.compactMap(value), b = qemu.compactMap(value)
            var cells = [cell(a, unit)]
            if !qemu.isEmpty {
                cells.append(cell(b, unit))
                if let x = median(a), let y = median(b), y > 0 { cells.append(formatFixed(x / y, digits: 2)) } else { cells.append("-") }
            }
            line(label, cells)
        }
        row("seq write \(sizeMiB) MiB + sync", unit: "MiB/s") { f in f.writeSeconds.flatMap { rateValue(megabytes, $0) } }
        row("seq read \(sizeMiB) MiB (caches dropped)", unit: "MiB/s") { f in f.readSeconds.flatMap { rateValue(megabytes, $0) } }
        row("create \(files) files (echo x > f)", unit: "files/s") { f in
            f.createSeconds.flatMap { rateValue(Double(f.filesCreated ?? 0), $0) }
        }
        print("  raw guest times (s)")
        row("  dd write + sync", unit: "s") { $0.writeSeconds }
        row("  dd read", unit: "s") { $0.readSeconds }
        row("  \(files) creates", unit: "s") { $0.createSeconds }
        row("  one fork+exec of dd, no data", unit: "s") { $0.execSeconds }
        print("  throughput without that fork+exec")
        row("  seq write", unit: "MiB/s") { f in net(f.writeSeconds, f.execSeconds) }
        row("  seq read", unit: "MiB/s") { f in net(f.readSeconds, f.execSeconds) }
        print("  host side per boot")
        row("  wall, start to exit (s)", unit: "s") { $0.wallSeconds }
        row("  host CPU, all threads/processes", unit: "s") { $0.hostCPUSeconds }
        row("  ours: of it outside KVM_RUN", unit: "s") { f in f.kvmRunCPUSeconds.map { f.hostCPUSeconds - $0 } }
        row("  qemu: of it in virtiofsd", unit: "s") { $0.serverCPUSeconds }
        var totals: [String: [Int]] = [:]
        for f in ours { for (reason, n) in f.exits { totals[reason, default: []].append(n) } }
        print("  ours: VM exits to user space by reason: " + totals.sorted { $0.key < $1.key }
            .map { "\($0.key)=\($0.value.map(String.init).joined(separator: "/"))" }.joined(separator: "  "))
        let problems = (ours.map { ("ours", $0) } + qemu.map { ("qemu", $0) }).filter { !$0.1.problems.isEmpty }
        for (who, f) in problems { print("  PROBLEM (\(who)): " + f.problems.joined(separator: "; ")) }
        print("  (nested emulating KVM: guest kernel code runs ~1000x slower here; compare the columns, not the absolute figures)")
    }

    func net(_ total: Double?, _ exec: Double?) -> Double? {
        guard let total, let exec, total > exec else { return nil }
        return rateValue(megabytes, total - exec)
    }
    func rateValue(_ amount: Double, _ seconds: Double) -> Double? { seconds > 0 ? amount / seconds : nil }
    func rate(_ amount: Double, _ seconds: Double?) -> String {
        seconds.flatMap { rateValue(amount, $0) }.map { formatFixed($0, digits: 2) } ?? "none"
    }
    func cell(_ values: [Double], _ unit: String) -> String {
        guard let m = median(values) else { return "none" }
        let text = formatFixed(m, digits: 2) + " " + unit
        return values.count > 1 ? text + " [" + values.map { formatFixed($0, digits: 2) }.joined(separator: " ") + "]" : text
    }
    func printConsole(_ who: String, _ text: String) {
        print("  --- \(who) guest console ---")
        for line in text.split(whereSeparator: \.isNewline).suffix(60) { print("  | " + line) }
        print("  ---")
    }
    func shellQuote(_ s: String) -> String {
        s.contains(" ") || s.contains(",") && s.contains("=") ? "'\(s)'" : s
    }
}
