import Foundation
import AgentProtocol

/// Debian's `qemu-system-x86_64 -M microvm`, booting the same kernel, command line and
/// agent as our VMM: the baseline for benchmarks, and (with `-accel tcg`) proof that
/// the guest kernel's nested-KVM patch is harmless on a CPU where SYSCALL works.
public struct QEMUMicrovm: Sendable {
    public enum Accelerator: String, Sendable { case kvm, tcg }

    public static let binary = "/usr/bin/qemu-system-x86_64"
    public var kernel: String
    public var initrd: String
    /// Kernel parameters without our own `virtio_mmio.device=` entries: microvm
    /// declares its virtio-mmio devices on the command line itself (acpi=off).
    public var kernelParameters: [String]
    public var memoryMiB = 128
    public var accelerator = Accelerator.kvm

    public init(kernel: String, initrd: String, kernelParameters: [String]) {
        self.kernel = kernel
        self.initrd = initrd
        self.kernelParameters = kernelParameters.filter { !$0.hasPrefix("virtio_mmio.device=") }
    }

    /// Under KVM, the device set matches ours: no ISA serial, RTC, PIT or PIC, no ACPI,
    /// no option ROMs; one virtio-mmio console (virtio-serial with one console port).
    /// The software CPU keeps microvm's PIT and PIC: without kvmclock or a TSC-deadline
    /// APIC timer the guest calibrates and ticks with the legacy timer (without it the
    /// APIC timer fails verification and user-space console output never drains).
    public var machine: String {
        accelerator == .kvm
            ? "microvm,x-option-roms=off,isa-serial=off,rtc=off,pit=off,pic=off,acpi=off"
            : "microvm,x-option-roms=off,isa-serial=off,rtc=off,acpi=off"
    }

    public var arguments: [String] {
        [
            "-M", machine,
            "-accel", accelerator.rawValue,
            "-cpu", accelerator == .kvm ? "host,-arch-capabilities" : "max",
            "-m", "\(memoryMiB)M", "-smp", "1",
            "-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
            "-kernel", kernel, "-initrd", initrd,
            "-device", "virtio-serial-device",
            "-chardev", "stdio,id=console0,signal=off", "-device", "virtconsole,chardev=console0",
            "-append", kernelParameters.joined(separator: " "),
        ]
    }

    public struct Result: Sendable {
        /// Seconds from spawn to the ready line (nil: never seen).
        public var secondsToReady: Double?
        public var ready: ReadyLine?
        public var wallSeconds: Double
        public var exitStatus: Int32
        public var timedOut: Bool
        public var console: String
    }

    /// Boots once; kills qemu after `deadline` seconds.
    public func run(deadline: Double) throws -> Result {
        guard FileManager.default.isExecutableFile(atPath: Self.binary) else {
            throw CocoaError(.fileNoSuchFile, userInfo: [NSFilePathErrorKey: Self.binary + " (install qemu-system-x86: scripts/setup-deps.sh)"])
        }
        let start = Date()
        let (process, output) = try ConsoleProcess.launch(Self.binary, arguments)
        let timer = DispatchSource.makeTimerSource()
        timer.schedule(deadline: .now() + deadline)
        // SIGKILL: a wedged qemu was seen to outlive SIGTERM.
        let pid = process.processIdentifier
        timer.setEventHandler { kill(pid, SIGKILL) }
        timer.resume()
        var scanner = ConsoleLineScanner()
        var readyAt: Double?
        let console = ConsoleProcess.drain(output) { chunk in
            if scanner.feed(chunk) != nil { readyAt = Date().timeIntervalSince(start) }
        }
        process.waitUntilExit()
        timer.cancel()
        let wall = Date().timeIntervalSince(start)
        return Result(secondsToReady: readyAt, ready: scanner.ready, wallSeconds: wall,
                      exitStatus: process.terminationStatus,
                      timedOut: process.terminatedBySignal && wall >= deadline,
                      console: String(decoding: console, as: UTF8.self))
    }
}
