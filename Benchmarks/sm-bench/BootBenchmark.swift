import ArgumentParser
import Foundation
import Synchronization
import AgentProtocol
import ReferenceVMM
import VMM

/// Boot to the agent's ready line: our VMM vs `qemu-system-x86_64 -M microvm`,
/// same kernel, same command line, same agent, same devices, interleaved runs.
struct BootBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "boot",
        abstract: "Wall time to the guest agent's ready line, ours vs qemu microvm; VM exits and VMM CPU per boot.")

    @Option(help: "Boots per VMM.") var runs = 3
    @Option(help: "Guest RAM in MiB.") var memory = 128
    @Option(help: "Per-boot deadline in seconds.") var deadline = 300.0
    @Flag(help: "Skip qemu (ours only).") var noQemu = false
    @Option(help: "Also boot ours with the agent on a read-only virtio-fs root share of this directory (no initramfs); default: sm-runc-guest/root beside the kernel, when present.")
    var guestRoot: String?

    struct OurBoot {
        var toReady: Double?
        var report: MachineReport
        var guestUptime: Double?
    }

    func run() throws {
        let kernel = try GuestArtifacts.kernel()
        let agentPath = try GuestArtifacts.agent()
        let initramfs = Initramfs.agentImage(agent: try readWholeFile(agentPath, what: "guest agent")).archive()
        let initrdFile = FileManager.default.temporaryDirectory.appendingPathComponent("sm-bench-\(getpid()).cpio")
        try Data(initramfs).write(to: initrdFile)
        defer { try? FileManager.default.removeItem(at: initrdFile) }
        let parameters = AgentProtocol.kernelParameters
        let hostKind = HostKind.detect()

        print("sm-bench boot: \(runs) boots each, \(memory) MiB, 1 vCPU")
        print("  kernel  \(kernel) (\(fileSize(kernel) >> 20) MiB)")
        print("  agent   \(agentPath) (initramfs \(initramfs.count >> 10) KiB, uncompressed)")
        print("  host    \(hostKind.summary)")

        let rootShare = guestRoot ?? defaultGuestRoot(kernel: kernel)
        var ours: [OurBoot] = []
        var oursShare: [OurBoot] = []
        var qemu: [QEMUMicrovm.Result] = []
        var commandLine = ""
        for i in 1...runs {
            let boot = try bootOurs(kernel: kernel, initramfs: initramfs, parameters: parameters)
            commandLine = boot.report.commandLine
            ours.append(boot)
            print("  run \(i) ours: \(seconds(boot.toReady)) to ready, \(boot.report.exit)")
            if let rootShare {
                let shared = try bootOurs(kernel: kernel, initramfs: nil, rootShare: rootShare, parameters: parameters)
                oursShare.append(shared)
                print("  run \(i) ours, agent on virtio-fs root: \(seconds(shared.toReady)) to ready, \(shared.report.exit)")
            }
            if !noQemu {
                var reference = QEMUMicrovm(kernel: kernel, initrd: initrdFile.path,
                                            kernelParameters: commandLine.split(separator: " ").map(String.init))
                reference.memoryMiB = memory
                let result = try reference.run(deadline: deadline)
                qemu.append(result)
                print("  run \(i) qemu: \(seconds(result.secondsToReady)) to ready, exit status \(result.exitStatus)")
                if i == 1 { print("  qemu command: \(QEMUMicrovm.binary) \(reference.arguments.map(shellQuote).joined(separator: " "))") }
            }
        }
        print("  guest command line: \(commandLine)")
        print("")
        report(ours: ours, oursShare: oursShare, qemu: qemu)
    }

    func defaultGuestRoot(kernel: String) -> String? {
        let directory = URL(fileURLWithPath: kernel).deletingLastPathComponent().appendingPathComponent("root")
        return FileManager.default.fileExists(atPath: directory.appendingPathComponent("sm-init").path) ? directory.path : nil
    }

    func bootOurs(kernel: String, initramfs: [UInt8]?, rootShare: String? = nil, parameters: [String]) throws -> OurBoot {
        let readyAt = Mutex<Double?>(nil)
        let scanner = Mutex(ConsoleLineScanner())
        let start = Date()
        var configuration = MachineConfiguration(kernelPath: kernel, initrd: initramfs.map { .bytes($0) })
        if let rootShare {
            configuration.shares = [.init(tag: GuestLayout.agentRootTag, hostPath: rootShare, readOnly: true)]
            configuration.rootShare = (GuestLayout.agentRootTag, GuestLayout.agentPath)
        }
        configuration.memoryMiB = memory
        configuration.extraKernelParameters = parameters
        configuration.deadlineSeconds = deadline
        configuration.consoleOutput = { bytes in
            if scanner.withLock({ $0.feed(bytes) }) != nil {
                readyAt.withLock { $0 = Date().timeIntervalSince(start) }
            }
        }
        let report = try Machine(configuration).run()
        return OurBoot(toReady: readyAt.withLock { $0 }, report: report,
                       guestUptime: scanner.withLock { $0.ready?.uptimeSeconds })
    }

    func report(ours: [OurBoot], oursShare: [OurBoot], qemu: [QEMUMicrovm.Result]) {
        let oursReady = ours.compactMap(\.toReady)
        let qemuReady = qemu.compactMap(\.secondsToReady)
        print("wall time to the agent's ready line (s)")
        print("  ours  " + row(ours.map(\.toReady)) + "   median " + seconds(median(oursReady)))
        if !qemu.isEmpty {
            print("  qemu  " + row(qemu.map(\.secondsToReady)) + "   median " + seconds(median(qemuReady)))
            if let a = median(oursReady), let b = median(qemuReady) {
                print("  ratio ours/qemu (median): \(formatFixed(a / b, digits: 2))  (goal <= 0.80)")
            }
        }
        if !oursShare.isEmpty {
            print("  ours, agent on a virtio-fs root instead of the initramfs (no qemu counterpart: Debian's qemu has no built-in virtio-fs server)")
            print("        " + row(oursShare.map(\.toReady)) + "   median " + seconds(median(oursShare.compactMap(\.toReady))))
        }
        print("  guest uptime at ready (ours): " + ours.compactMap(\.guestUptime).map { formatFixed($0, digits: 2) }.joined(separator: " "))
        print("")
        print("our VMM per boot")
        var totals: [String: [Int]] = [:]
        for boot in ours { for (reason, n) in boot.report.exits { totals[reason, default: []].append(n) } }
        print("  VM exits to user space, by reason: " + totals.sorted { $0.key < $1.key }
            .map { "\($0.key)=\($0.value.map(String.init).joined(separator: "/"))" }.joined(separator: "  "))
        print("  VMM host CPU outside KVM_RUN (ms): " + ours.map { formatFixed($0.report.vmmCPUSecondsOutsideKVMRun * 1000, digits: 1) }.joined(separator: " ")
            + "   (goal < 10)")
        print("    of which setup before the first KVM_RUN (ms): " + ours.map { formatFixed($0.report.setupCPUSeconds * 1000, digits: 1) }.joined(separator: " "))
        print("  host CPU inside KVM_RUN (s): " + ours.map { formatFixed($0.report.kvmRunCPUSeconds, digits: 2) }.joined(separator: " "))
    }

    func row(_ values: [Double?]) -> String { values.map { seconds($0) }.joined(separator: "  ") }
    func seconds(_ value: Double?) -> String { value.map { formatFixed($0, digits: 2) } ?? "none" }
    func fileSize(_ path: String) -> Int {
        let resolved = URL(fileURLWithPath: path).resolvingSymlinksInPath().path
        return ((try? FileManager.default.attributesOfItem(atPath: resolved)[.size]) as? Int) ?? 0
    }
    func shellQuote(_ s: String) -> String { s.contains(" ") || s.contains(",") && s.contains("=") ? "'\(s)'" : s }
}
