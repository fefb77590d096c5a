import AgentProtocol

/// Everything needed to build and boot one microVM.
public struct MachineConfiguration: Sendable {
    public var kernelPath: String
    /// The initial RAM filesystem: a file, or bytes built in memory (see `Initramfs`).
    public var initrd: Initrd?
    /// Host directories shared into the guest with virtio-fs, in slot order.
    public var shares: [Share] = []
    /// Tag of the share the guest kernel mounts as `/` (`root=<tag> rootfstype=virtiofs`),
    /// and the program it starts there; nil boots from the initrd.
    public var rootShare: (tag: String, initPath: String)?
    /// The agent channel: a virtio-vsock device whose host side is Unix sockets at this
    /// path (a guest connection to host port P reaches `<path>_P`; host processes
    /// connect to `<path>` and send "CONNECT <port>\n"). nil: no vsock device.
    public var vsockSocketPath: String?
    /// A virtio-net device (nil: none). Its backend, a tap opened in the container's
    /// network namespace, may be nil too: the device is then present (the layout a
    /// snapshot is made and restored with) but moves no frames.
    public var network: Network?
    public var memoryMiB: Int = 128
    /// vCPUs (1 to `maximumVCPUs`): vCPU 0 boots the kernel, the guest starts the others.
    public var vcpuCount: Int = 1
    /// Appended after the VMM's own kernel parameters.
    public var extraKernelParameters: [String] = []
    /// nil: detect.
    public var hostKind: HostKind?
    /// Offer a transmit-only UART at 0x3f8 and `earlyprintk=serial` (debugging; costs a VM exit per byte).
    public var earlySerial = false
    /// Create the in-kernel i8254 PIT (off: the guest times with the local APIC and kvmclock/TSC).
    public var pit = false
    /// Boot for a snapshot: `sm.snapshot=1` tells the agent to stop at its quiescent
    /// point (see `SnapshotPoint`) and the VMM watches the console for it.
    public var snapshotPoint = false
    /// The VMM stops the guest with an error after this many seconds (nil: never).
    public var deadlineSeconds: Double?
    /// Sample the guest's instruction pointer this often (0: off); see `GuestProfile`.
    public var profileIntervalMilliseconds = 0
    /// Where guest console bytes go.
    public var consoleOutput: @Sendable ([UInt8]) -> Void = { _ in }
    /// Diagnostics (the `--debug` log).
    public var log: @Sendable (String) -> Void = { _ in }
    /// Runs first on each VMM thread, before it does guest-driven work: installs that
    /// thread's seccomp filter (see `SeccompPolicy`). A failure stops the machine
    /// before the guest runs.
    public var confineThread: (@Sendable (VMMThreadKind) throws -> Void)?

    public init(kernelPath: String, initrd: Initrd? = nil) {
        self.kernelPath = kernelPath
        self.initrd = initrd
    }

    public struct Share: Sendable, Equatable {
        public var tag: String
        public var hostPath: String
        public var readOnly: Bool
        /// How long the guest may cache names and attributes: short (1 s) for a share
        /// the host may change behind the guest's back (a rootfs, bind sources), long
        /// for one nobody changes while the guest runs (the agent's own root).
        public var cacheSeconds: UInt64
        public init(tag: String, hostPath: String, readOnly: Bool, cacheSeconds: UInt64 = 1) {
            self.tag = tag
            self.hostPath = hostPath
            self.readOnly = readOnly
            self.cacheSeconds = cacheSeconds
        }
    }

    public struct Network: Sendable {
        /// A non-blocking tap (`IFF_TAP | IFF_NO_PI`); see `TapDevice.open`.
        public var tap: OwnedDescriptor?
        public init(tap: OwnedDescriptor? = nil) { self.tap = tap }
    }

    public enum Initrd: Sendable {
        case file(String)
        case bytes([UInt8])
    }

    /// Parameters every guest gets (guest/README.md gives the measurements):
    /// - `console=hvc0`: the console is virtio-console; no UART is probed.
    /// - `quiet`: every console byte is guest kernel work (emulated on nested hosts).
    /// - `panic=-1 reboot=t`: a panic or a restart ends as a triple fault, which
    ///   reaches the VMM as KVM_EXIT_SHUTDOWN (a power-off would halt in the guest).
    /// - `noreplace-smp`: one vCPU need not rewrite thousands of `lock` prefixes.
    /// - `percpu_alloc=page`: per-CPU areas without zeroing a 2 MiB chunk.
    /// - `tsc=reliable`: kvmclock/TSC need no watchdog.
    public static let baseKernelParameters = [
        "console=hvc0", "quiet", "panic=-1", "reboot=t", "noreplace-smp", "percpu_alloc=page", "tsc=reliable",
    ]

    /// The virtio devices the machine attaches, by name, in slot order: the console,
    /// the vsock (with `vsockSocketPath`), the network (with `network`; whether it has
    /// a tap is not part of the layout), one virtio-fs per share (with its tag), and
    /// the balloon last. `Machine` checks that it attached exactly these; a snapshot
    /// is keyed by them (the device section is restored slot by slot).
    public var deviceLayout: [String] {
        ["virtio-console"] + (vsockSocketPath == nil ? [] : ["virtio-vsock"]) + (network == nil ? [] : ["virtio-net"]) + shares.map { "virtio-fs \($0.tag)" } + ["virtio-balloon"]
    }

    /// The guest kernel's command line for this configuration on `hostKind`, with
    /// `devices` (the `virtio_mmio.device=` parameters of the attached devices, in
    /// slot order) where the machine declares its devices. The one place it is made:
    /// `Machine` boots with it, and a snapshot cache keys by it (with stand-ins for
    /// the device parameters).
    public func kernelParameters(hostKind: HostKind, devices: [String]) throws -> [String] {
        var parameters = Self.baseKernelParameters + hostKind.kernelWorkarounds
        if earlySerial { parameters.append("earlyprintk=serial,0x3f8,115200") }
        parameters += devices
        if let root = rootShare {
            guard let share = shares.first(where: { $0.tag == root.tag }) else {
                throw MachineError.invalidConfiguration("root share `\(root.tag)` is not among the shares")
            }
            parameters += ["root=\(root.tag)", "rootfstype=virtiofs", share.readOnly ? "ro" : "rw", "init=\(root.initPath)"]
        }
        if snapshotPoint { parameters.append(SnapshotPoint.kernelParameter) }
        return parameters + extraKernelParameters
    }

    /// The command line a machine of this configuration boots with on `hostKind`: its
    /// devices in their slots (`kernelParameters` is the one place it is built; a
    /// container's plan records this, the snapshot cache keys by it).
    public func commandLine(hostKind: HostKind) throws -> [String] {
        try kernelParameters(hostKind: hostKind, devices: VirtioSlots.kernelParameters(count: deviceLayout.count))
    }

    /// The guest kernel's `NR_CPUS` (guest/kernel.config).
    public static let maximumVCPUs = 8
}

/// How a guest run ended.
public enum GuestExit: Sendable, Equatable, CustomStringConvertible {
    /// The guest reset itself (a restart request with `reboot=t`): its normal end.
    case reset
    /// The guest kernel panicked; the message is its panic line.
    case panic(String)
    /// KVM could not run an instruction (or another internal error).
    case internalError(String, rip: UInt64)
    case failEntry(hardwareReason: UInt64)
    /// The guest halted with nothing to wake it.
    case halted
    case deadlineExceeded(seconds: Double)
    case vmmError(String)

    public var isClean: Bool { self == .reset }

    public var description: String {
        switch self {
        case .reset: return "guest reset (normal end)"
        case .panic(let line): return "guest kernel panic: \(line)"
        case let .internalError(what, rip): return "\(what) at RIP 0x\(String(rip, radix: 16))"
        case .failEntry(let reason): return "KVM_EXIT_FAIL_ENTRY (hardware reason 0x\(String(reason, radix: 16)))"
        case .halted: return "guest halted with interrupts off (KVM_EXIT_HLT)"
        case .deadlineExceeded(let s): return "guest did not finish within the \(Int(s)) s deadline; stopped"
        case .vmmError(let message): return message
        }
    }
}

/// What one run measured.
public struct MachineReport: Sendable {
    public var exit: GuestExit
    public var hostKind: HostKind
    public var commandLine: String
    /// VM exits handled in user space, by reason, summed over the vCPUs.
    public var exits: [String: Int]
    /// The same per vCPU (index = vCPU).
    public var vcpuExits: [[String: Int]]
    /// Wall seconds from `run` to the end.
    public var wallSeconds: Double
    /// Host CPU seconds of the VMM process since the machine was built, and of it inside KVM_RUN.
    public var processCPUSeconds: Double
    public var kvmRunCPUSeconds: Double
    /// Host CPU seconds before the first KVM_RUN (loading, setup).
    public var setupCPUSeconds: Double
    /// The boot vCPU's RIP samples (with `profileIntervalMilliseconds`).
    public var profile: GuestProfile?
    /// Every vCPU's samples in time order (index = vCPU; empty without profiling).
    public var vcpuSamples: [[VCPUSample]]
    /// Each device's statistics line (`VirtioDevice.statistics`), slot order.
    public var deviceStatistics: [String] = []
    public var vmmCPUSecondsOutsideKVMRun: Double { max(0, processCPUSeconds - kvmRunCPUSeconds) }
}

/// The threads a Machine runs, each with its own seccomp list.
public enum VMMThreadKind: String, Sendable {
    case vcpu = "vCPU"
    case eventLoop = "event loop"
    case network = "network"

    public var rules: [SyscallRule] {
        switch self {
        case .vcpu: SeccompPolicy.vcpu
        case .eventLoop: SeccompPolicy.eventLoop
        case .network: SeccompPolicy.network
        }
    }
}
