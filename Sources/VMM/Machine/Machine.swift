#if canImport(Glibc)
import Glibc
#endif
import CKVM
import Dispatch
import Synchronization

/// The composition root (Firecracker's `builder`): KVM, guest memory, the kernel
/// loader, devices, the event loop and the vCPU thread, put together for one boot.
public final class Machine: @unchecked Sendable {
    public let configuration: MachineConfiguration
    public let hostKind: HostKind
    public let commandLine: String

    private let kvm: KVMSystem
    private let vm: KVMVirtualMachine
    private let memory: GuestMemory
    private let vcpu: KVMVCPU
    private let eventLoop: EventLoop
    private let console: VirtioConsole
    private let consoleTransport: VirtioMMIOTransport
    /// Every virtio transport, in slot order.
    private let transports: [VirtioMMIOTransport]
    let snapshotReady: SnapshotReadyWatcher
    /// Wall seconds from the start of `init` to a restored machine ready to run
    /// (KVM VM, RAM mapped, devices, irqchip, clock and vCPU state); nil for a boot.
    public let restoreSeconds: Double?
    /// Where `restoreSeconds` went, in order (KVM VM and irqchip, RAM mapping,
    /// devices, machine and vCPU state); empty for a boot.
    public private(set) var restoreSteps: [(step: String, seconds: Double)] = []
    private let mmio: Bus
    private let pio: Bus
    private let statistics = ExitStatistics()
    private let setupCPU: Double
    private let started: Double
    private let cpuAtStart: Double

    private let stopRequested = Atomic<Bool>(false)
    private let pauseRequested = Atomic<Bool>(false)
    private let vcpuParked = Atomic<Bool>(false)
    private let resumeSignal = DispatchSemaphore(value: 0)
    private let profiling = Atomic<Bool>(false)
    // Owned by the vCPU thread until it finishes, then read by `run`.
    private var vcpuThread: OSThread?
    private var kvmRunCPU: Double = 0
    private var profile = GuestProfile()

    /// The guest's vsock context id (2 is the host, 3 the first guest).
    public static let guestCID: UInt64 = 3

    /// Builds the machine: nothing runs until `run`.
    public convenience init(_ configuration: MachineConfiguration) throws {
        try self.init(configuration, restoring: nil)
    }

    /// Builds the machine that boots (`snapshot` nil) or continues `snapshot`: its RAM
    /// mapped MAP_PRIVATE from the file, its irqchip, PIT, clock, devices and vCPU
    /// as captured, and the wake-up line queued on the console for the agent.
    init(_ configuration: MachineConfiguration, restoring snapshot: Snapshot?) throws {
        started = monotonicSeconds()
        cpuAtStart = processCPUSeconds()
        self.configuration = configuration
        let log = configuration.log
        guard (1...MachineConfiguration.maximumVCPUs).contains(configuration.vcpuCount) else {
            throw MachineError.invalidConfiguration("vcpus \(configuration.vcpuCount): this VMM boots 1 vCPU (multi-vCPU bring-up is issue 8)")
        }
        let ramBytes = UInt64(configuration.memoryMiB) << 20
        guard configuration.memoryMiB >= 32, ramBytes <= X86Layout.maximumRAM else {
            throw MachineError.invalidConfiguration("memory \(configuration.memoryMiB) MiB: want 32 to \(X86Layout.maximumRAM >> 20) MiB")
        }
        hostKind = configuration.hostKind ?? HostKind.detect()
        log("host: \(hostKind.summary)")

        kvm = try KVMSystem()
        for (capability, name) in [(KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP"), (KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY"),
                                   (KVM_CAP_IRQFD, "KVM_CAP_IRQFD"), (KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT")] {
            guard kvm.checkExtension(capability) > 0 else { throw MachineError.missingCapability(name) }
        }
        vm = try kvm.createVM()
        try vm.setTSSAddress(X86Layout.tss)
        try vm.setIdentityMapAddress(X86Layout.identityMap)
        try vm.createIRQChip()
        if configuration.pit { try vm.createPIT() }

        if let snapshot {
            guard snapshot.header.memorySize == ramBytes else {
                throw SnapshotError.memorySizeMismatch(found: snapshot.header.memorySize, expected: ramBytes)
            }
            guard snapshot.header.vcpuCount == configuration.vcpuCount else {
                throw SnapshotError.vcpuCountMismatch(found: snapshot.header.vcpuCount, expected: configuration.vcpuCount)
            }
            guard (snapshot.machine.pit != nil) == configuration.pit else {
                throw SnapshotError.unsupported("the snapshot was made \(configuration.pit ? "without" : "with") a PIT, this machine is configured \(configuration.pit ? "with" : "without")")
            }
        }
        let vmReady = monotonicSeconds()
        let memory = try snapshot?.mapMemory() ?? GuestMemory(size: ramBytes)
        self.memory = memory
        let mapped = monotonicSeconds()
        try vm.setUserMemoryRegion(slot: 0, guestAddress: 0, size: ramBytes, hostAddress: memory.hostAddress)

        let entry = snapshot == nil ? try Self.loadKernel(configuration, into: memory, ramBytes: ramBytes) : nil

        let memoryReady = monotonicSeconds()
        // Devices.
        eventLoop = try EventLoop()
        var mmio = Bus(name: "MMIO")
        var pio = Bus(name: "port I/O")
        let userOutput = configuration.consoleOutput
        let watcher = SnapshotReadyWatcher()
        snapshotReady = watcher
        let output: @Sendable ([UInt8]) -> Void
        if configuration.snapshotPoint {
            output = { bytes in
                watcher.feed(bytes)
                userOutput(bytes)
            }
        } else {
            output = userOutput
        }
        var slots = VirtioSlots(vm: vm, memory: memory, loop: eventLoop, log: log)
        console = VirtioConsole(output: output)
        consoleTransport = try slots.attach(console, name: "virtio-console", bus: &mmio)
        if let path = configuration.vsockSocketPath {
            let vsock = try VirtioVsock(guestCID: Self.guestCID, socketPath: path, log: log)
            let transport = try slots.attach(vsock, name: "virtio-vsock", bus: &mmio)
            try eventLoop.add(vsock.hostEvents) { vsock.hostEventsReady(on: transport) }
        }
        for share in configuration.shares {
            let fileSystem = try PassthroughFileSystem(root: share.hostPath, readOnly: share.readOnly)
            let device = try VirtioFs(tag: share.tag, server: FuseServer(fileSystem: fileSystem))
            _ = try slots.attach(device, name: "virtio-fs \(share.tag)", bus: &mmio)
        }
        if configuration.earlySerial {
            try pio.insert(SerialSink { byte in output([byte]) }, base: SerialSink.base, size: SerialSink.size)
        }
        self.mmio = mmio
        self.pio = pio
        transports = slots.transports

        var parameters = MachineConfiguration.baseKernelParameters + hostKind.kernelWorkarounds
        if configuration.earlySerial { parameters.append("earlyprintk=serial,0x3f8,115200") }
        parameters += slots.kernelParameters
        if let root = configuration.rootShare {
            guard let share = configuration.shares.first(where: { $0.tag == root.tag }) else {
                throw MachineError.invalidConfiguration("root share `\(root.tag)` is not among the shares")
            }
            parameters += ["root=\(root.tag)", "rootfstype=virtiofs", share.readOnly ? "ro" : "rw", "init=\(root.initPath)"]
        }
        if configuration.snapshotPoint { parameters.append(SnapshotPoint.kernelParameter) }
        parameters += configuration.extraKernelParameters
        commandLine = parameters.joined(separator: " ")

        vcpu = try vm.createVCPU(index: 0)
        if let snapshot {
            // The command line is in the restored RAM already; this one only has to
            // describe the same devices, which the device section checks slot by slot.
            guard snapshot.devices.devices.count == transports.count else {
                throw SnapshotError.malformed("the snapshot has \(snapshot.devices.devices.count) virtio devices, this machine \(transports.count)")
            }
            for (transport, saved) in zip(transports, snapshot.devices.devices) { try transport.restoreState(saved) }
            let devicesReady = monotonicSeconds()
            try snapshot.restore(into: vm, vcpus: [vcpu], system: kvm)
            let stateReady = monotonicSeconds()
            // After the irqchip: interrupts raised now must not be overwritten by it.
            for transport in transports { transport.kickAfterRestore() }
            restoreSeconds = stateReady - started
            setupCPU = processCPUSeconds() - cpuAtStart
            restoreSteps = [("KVM VM + irqchip", vmReady - started), ("RAM map MAP_PRIVATE", mapped - vmReady),
                            ("KVM memory slot", memoryReady - mapped),
                            ("devices (attach + state)", devicesReady - memoryReady),
                            ("irqchip/clock/vCPU state", stateReady - devicesReady)]
            sendConsoleInput(try SnapshotPoint.wakeUpLine())
            log("machine restored from \(snapshot.path): \(configuration.memoryMiB) MiB RAM, " +
                "\(formatFixed(restoreSeconds! * 1000, digits: 2)) ms (" +
                restoreSteps.map { "\($0.0) \(formatFixed($0.1 * 1000, digits: 2)) ms" }.joined(separator: ", ") + ")")
            return
        }
        restoreSeconds = nil
        log("kernel command line: \(commandLine)")
        var bootParams = BootParams(commandLine: commandLine, ramSize: ramBytes, initrd: entry!.initrd)
        bootParams.randomSeed = try hostRandomBytes(32)
        try bootParams.write(to: memory)

        try X86VCPUSetup.configure(vcpu, entry: entry!.entry, cpuid: try kvm.supportedCPUID(), cpuCount: configuration.vcpuCount)
        setupCPU = processCPUSeconds() - cpuAtStart
        log("machine built: \(configuration.memoryMiB) MiB RAM, kernel entry \(entry!.entry), " +
            "\(formatFixed((monotonicSeconds() - started) * 1000, digits: 1)) ms")
    }

    /// Copies the kernel, initrd and boot tables into guest RAM straight from file mappings.
    private static func loadKernel(_ configuration: MachineConfiguration, into memory: GuestMemory,
                                   ramBytes: UInt64) throws -> (entry: GuestAddress, initrd: (address: GuestAddress, size: Int)?) {
        let kernel = try MappedFile(configuration.kernelPath, what: "kernel")
        let image = try kernel.withBytes { try ELFLoader.load($0, name: configuration.kernelPath, into: memory) }
        var initrd: (address: GuestAddress, size: Int)?
        if let source = configuration.initrd {
            func place(_ bytes: UnsafeRawBufferPointer) throws {
                let address = try BootParams.initrdAddress(size: bytes.count, ramSize: ramBytes, kernelEnd: image.end)
                try memory.write(bytes: bytes, at: address)
                initrd = (address, bytes.count)
            }
            switch source {
            case .file(let path): try MappedFile(path, what: "initrd").withBytes(place)
            case .bytes(let built): try built.withUnsafeBytes(place)
            }
        }
        try X86VCPUSetup.writeBootTables(to: memory)
        try MPTable(cpuCount: configuration.vcpuCount).write(to: memory)
        return (image.entry, initrd)
    }

    /// Host input for the guest console (e.g. the VMM's stdin).
    public func sendConsoleInput(_ bytes: [UInt8]) {
        consoleTransport.withDevice(VirtioConsole.self) { console, queues throws(Virtqueue.QueueError) in
            try console.enqueueInput(bytes, queues: &queues)
        }
    }

    /// Boots (or continues a restored guest) and runs until it ends, fails, or the deadline passes.
    public func run() throws -> MachineReport {
        let running = try launch()
        if let deadline = configuration.deadlineSeconds {
            if running.finished.wait(timeout: .now() + deadline) == .timedOut {
                stop(running.thread)
                running.finished.wait()
                running.result.withLock { if $0 == nil || $0 == .vmmError("stopped") { $0 = .deadlineExceeded(seconds: deadline) } }
            }
        } else {
            running.finished.wait()
        }
        return finish(running)
    }

    /// The threads of a running machine.
    final class Running: @unchecked Sendable {
        let finished = DispatchSemaphore(value: 0)
        let result = Mutex<GuestExit?>(nil)
        // Set by `launch` before anyone else sees this object.
        var thread: OSThread!
        var profiler: DispatchSourceTimer?
        var exit: GuestExit? { result.withLock { $0 } }
    }

    /// Starts the event loop and the vCPU thread.
    func launch() throws -> Running {
        guard ckvm_install_kick_handler() == 0 else {
            throw SystemCallError(call: "sigaction", argument: "vCPU kick signal", errno: .init(rawValue: errno))
        }
        let confine = configuration.confineThread
        let confinementFailure = Mutex<String?>(nil)
        let eventLoopReady = DispatchSemaphore(value: 0)
        try eventLoop.start(prepare: {
            do { try confine?(.eventLoop) } catch { confinementFailure.withLock { $0 = "confine the event loop: \(error)" } }
            eventLoopReady.signal()
        })
        eventLoopReady.wait()
        let running = Running()
        let thread = OSThread(name: "sm-vcpu0") { [self] in
            let exit: GuestExit
            do {
                try confine?(.vcpu)
                // The event loop confined itself before this thread was started (or failed to).
                if let failure = confinementFailure.withLock({ $0 }) { throw VMMConfinementError(description: failure) }
                exit = vcpuLoop()
            } catch {
                exit = .vmmError("\(error)")
            }
            running.result.withLock { $0 = exit }
            running.finished.signal()
        }
        running.thread = thread
        vcpuThread = thread
        try thread.start()
        running.profiler = startProfiler()
        return running
    }

    /// Joins the ended vCPU thread, stops the event loop, reports.
    func finish(_ running: Running) -> MachineReport {
        running.thread.join()
        vcpuThread = nil          // the thread's closure holds this machine
        running.profiler?.cancel()
        eventLoop.stop()

        let exit = running.exit ?? .vmmError("vCPU thread ended without a result")
        return MachineReport(
            exit: exit, hostKind: hostKind, commandLine: commandLine, exits: statistics.snapshot,
            wallSeconds: monotonicSeconds() - started, processCPUSeconds: processCPUSeconds() - cpuAtStart,
            kvmRunCPUSeconds: kvmRunCPU, setupCPUSeconds: setupCPU,
            profile: configuration.profileIntervalMilliseconds > 0 ? profile : nil)
    }

    /// Pauses the guest: the vCPU leaves KVM_RUN and parks until `resume`. Returns
    /// once it is parked (false if it did not within a second, or is not running).
    @discardableResult
    public func pause() -> Bool {
        guard let thread = vcpuThread else { return false }
        pauseRequested.store(true, ordering: .sequentiallyConsistent)
        vcpu.requestImmediateExit()
        thread.kill(ckvm_kick_signal())
        for _ in 0..<100 {
            if vcpuParked.load(ordering: .sequentiallyConsistent) { return true }
            usleep(10_000)
        }
        return vcpuParked.load(ordering: .sequentiallyConsistent)
    }

    /// Captures the paused guest into a snapshot file: stops the event loop, serves
    /// what the driver queued (so no request is in flight), then saves the devices,
    /// the VM-wide state and the vCPU, and writes RAM. The machine cannot run on.
    func captureStopped(to path: String, identity: SnapshotIdentity) throws {
        guard vcpuParked.load(ordering: .sequentiallyConsistent) else { throw MachineError.snapshotFailed("the vCPU is not paused") }
        eventLoop.stop()
        let devices = DeviceStates(devices: try transports.map { try $0.captureState() })
        let machineState = try MachineState.capture(vm)
        let vcpuState = try VCPUState.capture(vcpu, system: kvm)
        try SnapshotFile.write(to: path, identity: identity, machine: machineState, vcpus: [vcpuState],
                               devices: devices, memory: memory)
    }

    /// Lets a paused guest run on.
    public func resume() {
        pauseRequested.store(false, ordering: .sequentiallyConsistent)
        resumeSignal.signal()
    }

    /// Parks the vCPU thread while a pause is requested (a stop still ends it).
    private func parkWhilePaused() {
        guard pauseRequested.load(ordering: .sequentiallyConsistent) else { return }
        vcpuParked.store(true, ordering: .sequentiallyConsistent)
        while pauseRequested.load(ordering: .sequentiallyConsistent) && !stopRequested.load(ordering: .sequentiallyConsistent) {
            _ = resumeSignal.wait(timeout: .now() + 0.1)
        }
        vcpuParked.store(false, ordering: .sequentiallyConsistent)
    }

    /// Stops a running guest from another thread.
    public func requestStop() {
        if let thread = vcpuThread { stop(thread) }
    }

    private func stop(_ thread: OSThread) {
        stopRequested.store(true, ordering: .sequentiallyConsistent)
        vcpu.requestImmediateExit()
        thread.kill(ckvm_kick_signal())
    }

    private func startProfiler() -> DispatchSourceTimer? {
        let interval = configuration.profileIntervalMilliseconds
        guard interval > 0, let thread = vcpuThread else { return nil }
        let timer = DispatchSource.makeTimerSource()
        timer.schedule(deadline: .now() + .milliseconds(interval), repeating: .milliseconds(interval))
        timer.setEventHandler { [self] in
            profiling.store(true, ordering: .sequentiallyConsistent)
            vcpu.requestImmediateExit()
            thread.kill(ckvm_kick_signal())
        }
        timer.resume()
        return timer
    }

    // MARK: - vCPU thread

    private func vcpuLoop() -> GuestExit {
        var kvmRunTime = 0.0
        defer { kvmRunCPU = kvmRunTime }
        var lastFailure: (rip: UInt64, count: Int) = (0, 0)
        while true {
            let before = threadCPUSeconds()
            let exit: VCPUExit
            do { exit = try vcpu.runOnce() } catch { return .vmmError("\(error)") }
            kvmRunTime += threadCPUSeconds() - before

            switch exit {
            case let .io(port, size, count, isWrite, value, bytes):
                statistics.count("io")
                guard let (device, offset) = pio.device(at: UInt64(port)) else {
                    if !isWrite { vcpu.completeIORead(size == 1 ? 0xff : (size == 2 ? 0xffff : 0xffff_ffff)) }
                    continue
                }
                if isWrite {
                    if count == 1 { device.write(offset: offset, length: size, value: value) }
                    else { for b in bytes { device.write(offset: offset, length: 1, value: UInt64(b)) } }
                } else {
                    vcpu.completeIORead(device.read(offset: offset, length: size))
                }
            case let .mmio(address, length, isWrite, value):
                statistics.count("mmio")
                guard let (device, offset) = mmio.device(at: address) else {
                    if !isWrite { vcpu.completeMMIORead(~0) }
                    continue
                }
                if isWrite { device.write(offset: offset, length: length, value: value) }
                else { vcpu.completeMMIORead(device.read(offset: offset, length: length)) }
            case .interrupted:
                vcpu.requestImmediateExit(false)
                if stopRequested.load(ordering: .sequentiallyConsistent) { return .vmmError("stopped") }
                parkWhilePaused()
                if stopRequested.load(ordering: .sequentiallyConsistent) { return .vmmError("stopped") }
                if profiling.exchange(false, ordering: .sequentiallyConsistent), let regs = try? vcpu.registers() {
                    profile.record(regs.rip)
                }
                statistics.count("interrupted")
            case .shutdown:
                statistics.count("shutdown")
                return guestEndReason()
            case .systemEvent(let type):
                statistics.count("system_event")
                return type == UInt32(KVM_SYSTEM_EVENT_CRASH) ? .panic("KVM_SYSTEM_EVENT_CRASH") : .reset
            case .halt:
                statistics.count("hlt")
                return .halted
            case .failEntry(let reason):
                return .failEntry(hardwareReason: reason)
            case .internalError(let error):
                statistics.count("internal_error")
                let rip = (try? vcpu.registers().rip) ?? 0
                if error.isEmulationFailure, let quirk = emulatorQuirk(error.instruction) {
                    // Never loop on one instruction: a second failure at the same RIP is fatal.
                    if lastFailure.rip == rip { lastFailure.count += 1 } else { lastFailure = (rip, 1) }
                    if lastFailure.count <= 2 {
                        do {
                            try quirk.apply(vcpu)
                            statistics.count("emulator quirk: \(quirk.name)")
                            continue
                        } catch {
                            return .vmmError("handling \(quirk.name) at RIP 0x\(String(rip, radix: 16)): \(error)")
                        }
                    }
                }
                return .internalError(error.description, rip: rip)
            case .other(let reason):
                return .internalError("unhandled KVM exit reason \(reason)", rip: (try? vcpu.registers().rip) ?? 0)
            }
        }
    }

    /// A triple fault is how both a guest restart and a panic end (`reboot=t`, `panic=-1`);
    /// the console's last lines tell them apart.
    private func guestEndReason() -> GuestExit {
        let tail = console.tail
        guard let start = firstIndex(of: Array("Kernel panic - not syncing".utf8), in: tail) else { return .reset }
        let line = tail[start...].prefix { $0 != 0x0a && $0 != 0x0d }
        return .panic(String(decoding: line, as: UTF8.self))
    }
}

/// Instructions this machine's KVM emulator cannot run but that have a safe meaning
/// the VMM can supply (see shared/notes/nested-kvm.md). Never reached on hardware KVM.
struct EmulatorQuirk {
    let name: String
    let apply: (KVMVCPU) throws -> Void
}

func emulatorQuirk(_ instruction: [UInt8]) -> EmulatorQuirk? {
    switch instruction.first {
    case 0x9b:  // FWAIT: waits for pending x87 exceptions; none are pending in kernel mode.
        return EmulatorQuirk(name: "fwait skipped") { try X86VCPUSetup.skipInstruction($0, length: 1) }
    case 0xcc:  // INT3: deliver the #BP the instruction would raise.
        return EmulatorQuirk(name: "int3 injected as #BP") { try X86VCPUSetup.injectBreakpoint($0) }
    default:
        return nil
    }
}

public enum MachineError: Error, CustomStringConvertible {
    case invalidConfiguration(String)
    case missingCapability(String)
    case readFailed(what: String, path: String, SystemCallError)
    case snapshotFailed(String)

    public var description: String {
        switch self {
        case .invalidConfiguration(let what): return "invalid machine configuration: \(what)"
        case .missingCapability(let name): return "/dev/kvm lacks \(name)"
        case let .readFailed(what, path, error): return "read \(what) `\(path)`: \(error.errno)"
        case .snapshotFailed(let why): return "snapshot: \(why)"
        }
    }
}

public func readWholeFile(_ path: String, what: String) throws -> [UInt8] {
    let fd: OwnedDescriptor
    do { fd = try OwnedDescriptor.open(path, flags: O_RDONLY) } catch { throw MachineError.readFailed(what: what, path: path, error) }
    var st = stat()
    guard fstat(fd.rawValue, &st) == 0 else {
        throw MachineError.readFailed(what: what, path: path, SystemCallError(call: "fstat", argument: path, errno: .init(rawValue: errno)))
    }
    let size = Int(st.st_size)
    var bytes = [UInt8](repeating: 0, count: size)
    var offset = 0
    while offset < size {
        let n = bytes.withUnsafeMutableBytes { Glibc.read(fd.rawValue, $0.baseAddress! + offset, size - offset) }
        if n < 0 && errno == EINTR { continue }
        guard n > 0 else {
            throw MachineError.readFailed(what: what, path: path, SystemCallError(call: "read", argument: path, errno: .init(rawValue: n == 0 ? EIO : errno)))
        }
        offset += n
    }
    return bytes
}

/// Bytes from the host's CRNG (getrandom(2)).
func hostRandomBytes(_ count: Int) throws(SystemCallError) -> [UInt8] {
    var bytes = [UInt8](repeating: 0, count: count)
    var filled = 0
    while filled < count {
        let n = try checkSize("getrandom", "\(count) bytes") {
            bytes.withUnsafeMutableBytes { getrandom($0.baseAddress! + filled, count - filled, 0) }
        }
        filled += n
    }
    return bytes
}

func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

func threadCPUSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

func processCPUSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// `x` with `digits` decimals, without Foundation.
public func formatFixed(_ x: Double, digits: Int) -> String {
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    let scaled = (abs(x) * scale).rounded()
    let whole = Int(scaled / scale)
    let fraction = Int(scaled - Double(whole) * scale)
    var text = (x < 0 && scaled != 0 ? "-" : "") + String(whole)
    if digits > 0 {
        let f = String(fraction)
        text += "." + String(repeating: "0", count: max(0, digits - f.count)) + f
    }
    return text
}

/// Where `needle` first occurs in `haystack` (no Foundation).
func firstIndex(of needle: [UInt8], in haystack: [UInt8]) -> Int? {
    guard !needle.isEmpty, haystack.count >= needle.count else { return nil }
    for i in 0...(haystack.count - needle.count) where haystack[i] == needle[0] {
        if haystack[i..<i + needle.count].elementsEqual(needle) { return i }
    }
    return nil
}

struct VMMConfinementError: Error, CustomStringConvertible {
    let description: String
}
