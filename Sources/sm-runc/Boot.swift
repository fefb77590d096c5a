import Runtime
import ArgumentParser
import Foundation
import VMM
import AgentProtocol

/// `sm-runc boot`: boots the guest kernel to the agent and back, without a bundle.
/// The VMM's smoke test and what the benchmark drives; prints the guest console.
struct Boot: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Boot the guest kernel and agent in a microVM and wait for it to end (diagnostics).")

    @Option(help: "Guest kernel (uncompressed ELF vmlinux).") var kernel: String?
    @Option(help: "Guest agent executable, packed as /init in an initramfs.") var agent: String?
    @Option(help: "Use this initramfs file instead of packing the agent.") var initrd: String?
    @Option(help: "Boot from this directory, shared read-only with virtio-fs as the guest's root; init is /sm-init (default: sm-runc-guest/root when present).")
    var guestRoot: String?
    @Flag(help: "Boot the agent from an initramfs instead of the guest root share.") var initramfs = false
    @Option(help: "Share a host directory with virtio-fs: TAG=DIR or TAG=DIR:ro (repeatable).") var share: [String] = []
    @Option(help: "Guest RAM in MiB.") var memory: Int = 128
    @Option(help: "vCPUs (1 to \(MachineConfiguration.maximumVCPUs)).") var vcpus: Int = 1
    @Option(help: "Stop the guest with an error after this many seconds.") var timeout: Double = 300
    @Option(help: "Extra kernel parameter (repeatable).") var append: [String] = []
    @Option(help: "Host kind: auto, hardware or emulating.") var hostKind: String = "auto"
    @Flag(help: "Offer a UART sink at 0x3f8 and earlyprintk (every byte is a VM exit).") var earlySerial = false
    @Flag(help: "Create the in-kernel i8254 PIT.") var pit = false
    @OptionGroup var globals: GlobalOptions
    @Option(help: "Sample the guest RIP every N ms and print the top functions (needs --system-map).") var profileMs: Int = 0
    @Option(help: "System.map of the guest kernel, for --profile-ms.") var systemMap: String?

    static func parseShare(_ text: String) throws -> MachineConfiguration.Share {
        guard let equals = text.firstIndex(of: "="), equals != text.startIndex else {
            throw ValidationError("--share \(text): want TAG=DIR or TAG=DIR:ro")
        }
        var path = String(text[text.index(after: equals)...])
        let readOnly = path.hasSuffix(":ro")
        if readOnly { path.removeLast(3) }
        return .init(tag: String(text[..<equals]), hostPath: path, readOnly: readOnly)
    }

    func run() throws {
        let logger = globals.reporter
        var configuration = MachineConfiguration(kernelPath: try GuestArtifacts.kernel(kernel))
        configuration.shares = try share.map(Self.parseShare)
        if !initramfs, initrd == nil, let guestRoot = guestRoot ?? GuestArtifacts.guestRoot() {
            configuration.shares.insert(.init(tag: GuestLayout.agentRootTag, hostPath: guestRoot, readOnly: true), at: 0)
            configuration.rootShare = (GuestLayout.agentRootTag, GuestLayout.agentPath)
        } else if let initrd {
            configuration.initrd = .file(initrd)
        } else {
            let agentPath = try GuestArtifacts.agent(agent)
            configuration.initrd = .bytes(Initramfs.agentImage(agent: try readWholeFile(agentPath, what: "guest agent")).archive())
        }
        configuration.memoryMiB = memory
        configuration.vcpuCount = vcpus
        configuration.deadlineSeconds = timeout
        configuration.extraKernelParameters = AgentProtocol.kernelParameters + append
        configuration.earlySerial = earlySerial
        configuration.pit = pit
        configuration.profileIntervalMilliseconds = profileMs
        switch hostKind {
        case "auto": configuration.hostKind = nil
        case let value:
            guard let kind = HostKind(rawValue: value) else { throw ValidationError("--host-kind: want auto, hardware or emulating") }
            configuration.hostKind = kind
        }
        configuration.consoleOutput = { bytes in
            bytes.withUnsafeBytes { _ = write(1, $0.baseAddress, $0.count) }
        }
        configuration.log = { logger.debug($0) }

        let machine = try Machine(configuration)
        let report = try machine.run()
        logger.debug("guest end: \(report.exit)")
        logger.debug("wall \(formatFixed(report.wallSeconds, digits: 2)) s; VMM CPU outside KVM_RUN " +
                     "\(formatFixed(report.vmmCPUSecondsOutsideKVMRun * 1000, digits: 1)) ms (setup " +
                     "\(formatFixed(report.setupCPUSeconds * 1000, digits: 1)) ms); CPU inside KVM_RUN " +
                     "\(formatFixed(report.kvmRunCPUSeconds, digits: 2)) s")
        logger.debug("VM exits to user space: " + report.exits.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "))
        if report.vcpuExits.count > 1 {
            for (index, exits) in report.vcpuExits.enumerated() {
                logger.debug("vCPU \(index) exits: " + exits.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "))
            }
        }
        if let profile = report.profile, let systemMap {
            let symbols = GuestProfile.parseSystemMap(try String(contentsOfFile: systemMap, encoding: .utf8))
            FileHandle.standardError.write(Data("guest profile (\(profile.total) samples):\n".utf8))
            for (name, count) in profile.byFunction(symbols).prefix(40) {
                FileHandle.standardError.write(Data("  \(count)\t\(name)\n".utf8))
            }
            if report.vcpuSamples.count > 1 {
                for (index, samples) in report.vcpuSamples.enumerated() {
                    FileHandle.standardError.write(Data("vCPU \(index) timeline (\(samples.count) samples):\n".utf8))
                    for line in VCPUTimeline.lines(samples, symbols: symbols) {
                        FileHandle.standardError.write(Data("  \(line)\n".utf8))
                    }
                }
            }
        }
        guard report.exit.isClean else {
            throw RuntimeError("boot: \(report.exit)")
        }
    }
}

/// A vCPU's samples as runs of (MP state, CS, function): "12.0-30.5 s mp=1 cs=0x0 0xfff0 (x38)".
enum VCPUTimeline {
    static func lines(_ samples: [VCPUSample], symbols: [(UInt64, String)]) -> [String] {
        func name(_ rip: UInt64) -> String {
            var lo = 0, hi = symbols.count
            while lo < hi {
                let mid = (lo + hi) / 2
                if symbols[mid].0 <= rip { lo = mid + 1 } else { hi = mid }
            }
            return lo > 0 && rip >= 0xffff_ffff_8000_0000 ? symbols[lo - 1].1 : "0x" + String(rip, radix: 16)
        }
        var lines: [String] = []
        var i = 0
        while i < samples.count {
            let first = samples[i]
            let key = (first.mpState, first.codeSegment, name(first.rip))
            var j = i + 1
            while j < samples.count, (samples[j].mpState, samples[j].codeSegment, name(samples[j].rip)) == key { j += 1 }
            let last = samples[j - 1]
            lines.append("\(formatFixed(first.seconds, digits: 1))-\(formatFixed(last.seconds, digits: 1)) s mp=\(key.0) cs=0x\(String(key.1, radix: 16)) \(key.2) rip=0x\(String(first.rip, radix: 16)) (x\(j - i))")
            i = j
        }
        return lines
    }
}
