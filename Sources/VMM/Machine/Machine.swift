#if canImport(Glibc)
import Glibc
#endif
import CKVM
import Dispatch
import Synchronization
import AgentProtocol

/// The composition root (Firecracker's `builder`): KVM, guest memory, the kernel
/// loader, devices, the event loop and one thread per vCPU, put together for one boot.
///
/// vCPU 0 is the bootstrap processor: it starts at the kernel's 64-bit entry. The
/// others (application processors) are left in their reset state, MP state
/// UNINITIALIZED, and the guest kernel starts them with INIT/SIPI through KVM's
/// in-kernel local APIC (the MP table lists them). Any vCPU's terminal exit (triple
/// fault, emulation failure, ...) ends the whole machine.
public final class Machine: @unchecked Sendable {
    public let configuration: MachineConfiguration
    public let hostKind: HostKind
    public let commandLine: String

    private let kvm: KVMSystem
    private let vm: KVMVirtualMachine
    private let memory: GuestMemory
    /// One per vCPU, index = APIC id; `vcpus[0]` is the BSP.
    private let vcpus: [VCPURunner]
    private let eventLoop: EventLoop
    /// The network device's loop (`sm-net`): its queues and its tap.
    private let networkLoop: EventLoop?
    private let network: VirtioNet?
    private let console: VirtioConsole
    private let consoleTransport: VirtioMMIOTransport
    /// Free page reporting: guest memory freed returns to the host.
    private let balloon: VirtioBalloon
    /// Every virtio transport, in slot order.
    private let transports: [VirtioMMIOTransport]
    /// The virtio-fs devices' file servers, in slot order (moved into the jail).
    let fileSystems: [PassthroughFileSystem]
    let snapshotReady: SnapshotReadyWatcher
    /// Wall seconds from the start of `init` to a restored machine ready to run
    /// (KVM VM, RAM mapped, devices, irqchip, clock and vCPU state); nil for a boot.
    public let restoreSeconds: Double?
    /// Where `restoreSeconds` went, in order (KVM VM and irqchip, RAM mapping,
    /// devices, machine and vCPU state); empty for a boot.
    public private(set) var restoreSteps: [(step: String, seconds: Double)] = []
    private let mmio: Bus
    private let pio: Bus
    private let setupCPU: Double
    private let started: Double
    private let cpuAtStart: Double

    private let stopRequested = Atomic<Bool>(false)
    private let pauseRequested = Atomic<Bool>(false)
    /// Set by `launch`, cleared by `finish`: the vCPU threads are running.
    private let launched = Atomic<Bool>(false)

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
            throw MachineError.invalidConfiguration("vcpus \(configuration.vcpuCount): want 1 to \(MachineConfiguration.maximumVCPUs) (the guest kernel's NR_CPUS)")
        }
        let ramBytes = UInt64(configuration.memoryMiB) << 20
        guard configuration.memoryMiB >= 32, ramBytes <= X86Layout.maximumRAM else {
            throw MachineError.invalidConfiguration("memory \(configuration.memoryMiB) MiB: want 32 to \(X86Layout.maximumRAM >> 20) MiB")
        }
        hostKind = configuration.hostKind ?? HostKind.detect()
        log("host: \(hostKind.summary)")

        kvm = try KVMSystem()
        for (capability, name) in [(KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP"), (KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY"),
                                   (KVM_CAP_IRQFD, "KVM_CAP_IRQFD"), (KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT"),
                                   // The guest's only clock event device (see X86CPUID.tscDeadlineTimer).
                                   (KVM_CAP_TSC_DEADLINE_TIMER, "KVM_CAP_TSC_DEADLINE_TIMER")] {
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
        if let configuration = configuration.network {
            let loop = try EventLoop()
            let device = VirtioNet(tap: configuration.tap, loop: loop, log: log)
            let transport = try slots.attach(device, name: "virtio-net", bus: &mmio, loop: loop)
            if let tap = configuration.tap {
                try loop.add(tap, armed: false) {
                    var live = false
                    transport.withDevice(VirtioNet.self) { device, queues throws(Virtqueue.QueueError) in
                        live = true
                        try device.tapReadable(&queues)
                    }
                    if !live { transport.withDeviceAnyState(VirtioNet.self) { $0.tapIdle() } }
                }
            }
            networkLoop = loop
            network = device
        } else {
            networkLoop = nil
            network = nil
        }
        // One budget of host fds for every share's inodes and open files, sized from
        // RLIMIT_NOFILE: the guest cannot take the fds the rest of the VMM needs.
        let descriptors = DescriptorBudget.forThisProcess()
        if !configuration.shares.isEmpty {
            log("virtio-fs: the shares may hold \(descriptors.limit) host fds for the guest, each at most \(DescriptorAccount.shareLimit(of: descriptors))")
        }
        var fileSystems: [PassthroughFileSystem] = []
        for share in configuration.shares {
            let fileSystem = try PassthroughFileSystem(root: share.hostPath, readOnly: share.readOnly, budget: descriptors)
            fileSystems.append(fileSystem)
            let device = try VirtioFs(tag: share.tag, server: FuseServer(fileSystem: fileSystem, timeout: FuseTimeout(seconds: share.cacheSeconds)))
            _ = try slots.attach(device, name: "virtio-fs \(share.tag)", bus: &mmio)
        }
        // Last, so the slots of the devices before it are those of machines without it.
        balloon = VirtioBalloon(log: log)
        _ = try slots.attach(balloon, name: "virtio-balloon", bus: &mmio)
        if configuration.earlySerial {
            try pio.insert(SerialSink { byte in output([byte]) }, base: SerialSink.base, size: SerialSink.size)
        }
        self.mmio = mmio
        self.pio = pio
        self.fileSystems = fileSystems
        transports = slots.transports

        // What a snapshot is keyed by is what was attached.
        let attached = slots.transports.map(\.name)
        guard attached == configuration.deviceLayout else {
            throw MachineError.invalidConfiguration("attached devices \(attached) are not the configuration's layout \(configuration.deviceLayout)")
        }
        guard slots.kernelParameters == VirtioSlots.kernelParameters(count: attached.count) else {
            throw MachineError.invalidConfiguration("virtio slots \(slots.kernelParameters) are not where the command line puts them")
        }
        commandLine = try configuration.commandLine(hostKind: hostKind).joined(separator: " ")

        let vm = self.vm
        vcpus = try (0..<configuration.vcpuCount).map { VCPURunner(try vm.createVCPU(index: UInt32($0))) }
        let kvmVCPUs = vcpus.map(\.vcpu)
        if let snapshot {
            // The command line is in the restored RAM already; this one only has to
            // describe the same devices, which the device section checks slot by slot.
            guard snapshot.devices.devices.count == transports.count else {
                throw SnapshotError.malformed("the snapshot has \(snapshot.devices.devices.count) virtio devices, this machine \(transports.count)")
            }
            for (transport, saved) in zip(transports, snapshot.devices.devices) { try transport.restoreState(saved) }
            let devicesReady = monotonicSeconds()
            try snapshot.restore(into: vm, vcpus: kvmVCPUs, system: kvm)
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

        let cpuid = try X86CPUID.base(kvm)
        for vcpu in kvmVCPUs {
            if vcpu.index == 0 {
                try X86VCPUSetup.configure(vcpu, entry: entry!.entry, cpuid: cpuid, cpuCount: configuration.vcpuCount)
            } else {
                try X86VCPUSetup.configureApplicationProcessor(vcpu, cpuid: cpuid, cpuCount: configuration.vcpuCount)
            }
        }
        setupCPU = processCPUSeconds() - cpuAtStart
        log("machine built: \(configuration.memoryMiB) MiB RAM, \(configuration.vcpuCount) vCPU(s), kernel entry \(entry!.entry), " +
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

    /// The network device's counters (nil: no network device).
    public var networkStatistics: VirtioNet.Statistics? { network?.statistics }

    /// What the balloon released so far (free page reporting).
    public var balloonStatistics: VirtioBalloon.Statistics { balloon.statistics }

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
                sampleAll()
                stopAll()
                running.finished.wait()
                running.result.withLock { if $0 == nil || $0 == .vmmError("stopped") { $0 = .deadlineExceeded(seconds: deadline) } }
                configuration.log("deadline of \(Int(deadline)) s passed: \(whereabouts())")
            }
        } else {
            running.finished.wait()
        }
        return finish(running)
    }

    /// The threads of a running machine.
    final class Running: @unchecked Sendable {
        /// Signalled once, when the last vCPU thread has ended.
        let finished = DispatchSemaphore(value: 0)
        /// The first vCPU's terminal exit; the others then end as "stopped".
        let result = Mutex<GuestExit?>(nil)
        let remaining: Atomic<Int>
        var profiler: DispatchSourceTimer?
        var exit: GuestExit? { result.withLock { $0 } }
        init(vcpuCount: Int) { remaining = Atomic(vcpuCount) }
    }

    /// Starts the event loop and one thread per vCPU (`sm-vcpu<N>`).
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
        if let networkLoop {
            let networkReady = DispatchSemaphore(value: 0)
            try networkLoop.start(name: "sm-net", prepare: {
                do { try confine?(.network) } catch { confinementFailure.withLock { $0 = "confine the network thread: \(error)" } }
                networkReady.signal()
            })
            networkReady.wait()
        }
        let running = Running(vcpuCount: vcpus.count)
        let began = monotonicSeconds()
        for runner in vcpus {
            runner.thread = OSThread(name: "sm-vcpu\(runner.vcpu.index)") { [self] in
                let exit: GuestExit
                do {
                    // Before the seccomp filter: the kick must reach this thread whoever started it.
                    guard ckvm_unblock_kick_signal() == 0 else {
                        throw SystemCallError(call: "pthread_sigmask", argument: "unblock the vCPU kick signal", errno: .init(rawValue: errno))
                    }
                    try confine?(.vcpu)
                    // The event loop confined itself before this thread was started (or failed to).
                    if let failure = confinementFailure.withLock({ $0 }) { throw VMMConfinementError(description: failure) }
                    exit = vcpuLoop(runner, began: began)
                } catch {
                    exit = .vmmError("\(error)")
                }
                let first = running.result.withLock { result in
                    if result == nil { result = exit; return true }
                    return false
                }
                // The first vCPU to end ends the machine: the others leave KVM_RUN.
                if first { stopAll() }
                if running.remaining.subtract(1, ordering: .sequentiallyConsistent).newValue == 0 {
                    running.finished.signal()
                }
            }
        }
        launched.store(true, ordering: .sequentiallyConsistent)
        for (started, runner) in vcpus.enumerated() {
            do {
                try runner.thread!.start()
                runner.started.store(true, ordering: .sequentiallyConsistent)
            } catch {
                // The threads already started see the stop; those never started count as ended.
                running.result.withLock { if $0 == nil { $0 = .vmmError("\(error)") } }
                stopAll()
                for _ in started..<vcpus.count {
                    if running.remaining.subtract(1, ordering: .sequentiallyConsistent).newValue == 0 { running.finished.signal() }
                }
                break
            }
        }
        running.profiler = startProfiler()
        return running
    }

    /// Joins the ended vCPU threads, stops the event loop, reports.
    func finish(_ running: Running) -> MachineReport {
        // Every vCPU thread has ended its work (`finished`): no more kicks, then join.
        running.profiler?.cancel()
        launched.store(false, ordering: .sequentiallyConsistent)
        for runner in vcpus {
            if runner.started.exchange(false, ordering: .sequentiallyConsistent) { runner.thread?.join() }
            runner.thread = nil          // the thread's closure holds this machine
        }
        eventLoop.stop()
        networkLoop?.stop()

        let exit = running.exit ?? .vmmError("vCPU threads ended without a result")
        var exits: [String: Int] = [:]
        for runner in vcpus { exits.merge(runner.statistics.snapshot, uniquingKeysWith: +) }
        return MachineReport(
            exit: exit, hostKind: hostKind, commandLine: commandLine, exits: exits,
            vcpuExits: vcpus.map(\.statistics.snapshot),
            wallSeconds: monotonicSeconds() - started, processCPUSeconds: processCPUSeconds() - cpuAtStart,
            kvmRunCPUSeconds: vcpus.reduce(0) { $0 + $1.kvmRunCPU }, setupCPUSeconds: setupCPU,
            profile: configuration.profileIntervalMilliseconds > 0 ? vcpus[0].profile : nil,
            vcpuSamples: configuration.profileIntervalMilliseconds > 0 ? vcpus.map(\.samples) : [],
            deviceStatistics: transports.compactMap(\.statistics))
    }

    /// Pauses the guest: every vCPU leaves KVM_RUN and parks until `resume`. Returns
    /// once all are parked (false if they were not within a second, or are not running).
    @discardableResult
    public func pause() -> Bool {
        guard launched.load(ordering: .sequentiallyConsistent) else { return false }
        pauseRequested.store(true, ordering: .sequentiallyConsistent)
        for runner in vcpus { runner.kick() }
        func allParked() -> Bool { vcpus.allSatisfy { $0.parked.load(ordering: .sequentiallyConsistent) } }
        for _ in 0..<100 {
            if allParked() { return true }
            usleep(10_000)
        }
        return allParked()
    }

    /// Captures the paused guest into a snapshot file: stops the event loop, serves
    /// what the driver queued (so no request is in flight), then saves the devices,
    /// the VM-wide state and every vCPU, and writes RAM. The machine cannot run on.
    func captureStopped(to path: String, identity: SnapshotIdentity) throws {
        for runner in vcpus where !runner.parked.load(ordering: .sequentiallyConsistent) {
            throw MachineError.snapshotFailed("vCPU \(runner.vcpu.index) is not paused")
        }
        eventLoop.stop()
        networkLoop?.stop()
        let devices = DeviceStates(devices: try transports.map { try $0.captureState() })
        let machineState = try MachineState.capture(vm)
        let msrIndices = try kvm.msrIndexList()
        let vcpuStates = try vcpus.map { try VCPUState.capture($0.vcpu, system: kvm, msrIndices: msrIndices) }
        try SnapshotFile.write(to: path, identity: identity, machine: machineState, vcpus: vcpuStates,
                               devices: devices, memory: memory)
    }

    /// Lets a paused guest run on.
    public func resume() {
        pauseRequested.store(false, ordering: .sequentiallyConsistent)
        for runner in vcpus { runner.resumeSignal.signal() }
    }

    /// Parks the calling vCPU thread while a pause is requested (a stop still ends it).
    private func parkWhilePaused(_ runner: VCPURunner) {
        guard pauseRequested.load(ordering: .sequentiallyConsistent) else { return }
        runner.parked.store(true, ordering: .sequentiallyConsistent)
        while pauseRequested.load(ordering: .sequentiallyConsistent) && !stopRequested.load(ordering: .sequentiallyConsistent) {
            _ = runner.resumeSignal.wait(timeout: .now() + 0.1)
        }
        runner.parked.store(false, ordering: .sequentiallyConsistent)
    }

    /// Stops a running guest from another thread.
    public func requestStop() {
        if launched.load(ordering: .sequentiallyConsistent) { stopAll() }
    }

    /// Asks every vCPU to record where it is (MP state, CS, RIP) as it leaves KVM_RUN,
    /// then gives them 200 ms to: for `whereabouts`, once the threads are joined.
    func sampleAll() {
        for runner in vcpus {
            runner.profiling.store(true, ordering: .sequentiallyConsistent)
            runner.kick()
        }
        usleep(200_000)
    }

    /// After the vCPU threads ended: each one's last sample and its VM exits, for the
    /// error about a guest that did not get where it should ("vCPU 1: mp_state 0 ...").
    func whereabouts() -> String {
        vcpus.enumerated().map { index, runner in
            let place = runner.samples.last.map {
                "mp_state \($0.mpState), cs 0x\(String($0.codeSegment, radix: 16)), rip 0x\(String($0.rip, radix: 16))"
            } ?? "no sample"
            let exits = runner.statistics.snapshot.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            return "vCPU \(index): \(place); exits: \(exits.isEmpty ? "none" : exits)"
        }.joined(separator: "; ")
    }

    /// Every vCPU thread leaves KVM_RUN and ends.
    private func stopAll() {
        stopRequested.store(true, ordering: .sequentiallyConsistent)
        for runner in vcpus { runner.kick() }
    }

    /// Samples every vCPU each interval: the BSP's RIP goes to `profile`, and each
    /// vCPU's (time, RIP, MP state) to its `samples`.
    private func startProfiler() -> DispatchSourceTimer? {
        let interval = configuration.profileIntervalMilliseconds
        guard interval > 0 else { return nil }
        let timer = DispatchSource.makeTimerSource()
        timer.schedule(deadline: .now() + .milliseconds(interval), repeating: .milliseconds(interval))
        timer.setEventHandler { [self] in
            for runner in vcpus {
                runner.profiling.store(true, ordering: .sequentiallyConsistent)
                runner.kick()
            }
        }
        timer.resume()
        return timer
    }

    // MARK: - vCPU threads

    private func vcpuLoop(_ runner: VCPURunner, began: Double) -> GuestExit {
        let vcpu = runner.vcpu
        let statistics = runner.statistics
        var kvmRunTime = 0.0
        defer { runner.kvmRunCPU = kvmRunTime }
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
                parkWhilePaused(runner)
                if stopRequested.load(ordering: .sequentiallyConsistent) { return .vmmError("stopped") }
                if runner.profiling.exchange(false, ordering: .sequentiallyConsistent) {
                    runner.sample(seconds: monotonicSeconds() - began)
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
                if error.isEmulationFailure, hostKind == .emulating, let quirk = emulatorQuirk(error.instruction) {
                    // Never loop on one instruction: a second failure at the same RIP is fatal.
                    if lastFailure.rip == rip { lastFailure.count += 1 } else { lastFailure = (rip, 1) }
                    if lastFailure.count <= 2 {
                        do {
                            try quirk.apply(vcpu)
                            statistics.count("emulator quirk: \(quirk.name)")
                            continue
                        } catch {
                            return .vmmError("vCPU \(vcpu.index): handling \(quirk.name) at RIP 0x\(String(rip, radix: 16)): \(error)")
                        }
                    }
                }
                return .internalError(vcpus.count > 1 ? "vCPU \(vcpu.index): \(error.description)" : error.description, rip: rip)
            case .other(let reason):
                return .internalError("vCPU \(vcpu.index): unhandled KVM exit reason \(reason)", rip: (try? vcpu.registers().rip) ?? 0)
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

/// One vCPU and what its thread owns: the thread, its exit counts, its KVM_RUN CPU
/// time and samples (written by that thread only, read after it is joined), and the
/// flags other threads use to park, resume or sample it.
final class VCPURunner: @unchecked Sendable {
    let vcpu: KVMVCPU
    let statistics = ExitStatistics()
    let parked = Atomic<Bool>(false)
    let profiling = Atomic<Bool>(false)
    let resumeSignal = DispatchSemaphore(value: 0)
    /// Set by `launch` before the thread starts, cleared by `finish` after the join.
    var thread: OSThread?
    /// The thread was started (and is not yet joined): it can be signalled.
    let started = Atomic<Bool>(false)
    var kvmRunCPU: Double = 0
    var profile = GuestProfile()
    var samples: [VCPUSample] = []
    static let maximumSamples = 100_000

    init(_ vcpu: KVMVCPU) { self.vcpu = vcpu }

    /// Makes the vCPU leave (or not enter) KVM_RUN: immediate_exit plus the kick signal.
    func kick() {
        vcpu.requestImmediateExit()
        if started.load(ordering: .sequentiallyConsistent) { thread?.kill(ckvm_kick_signal()) }
    }

    /// On the vCPU's own thread, outside KVM_RUN: records where it is.
    func sample(seconds: Double) {
        guard let regs = try? vcpu.registers() else { return }
        profile.record(regs.rip)
        guard samples.count < Self.maximumSamples else { return }
        let mp = (try? vcpu.mpState().mp_state) ?? UInt32.max
        let cs = (try? vcpu.specialRegisters().cs.selector) ?? 0
        samples.append(VCPUSample(seconds: seconds, rip: regs.rip, codeSegment: cs, mpState: mp))
    }
}

/// Where one vCPU was at one profiler tick.
public struct VCPUSample: Sendable, Equatable {
    /// Seconds since the vCPU threads were started.
    public var seconds: Double
    public var rip: UInt64
    public var codeSegment: UInt16
    /// KVM_MP_STATE_* (0 runnable, 1 uninitialized, 2 init received, 3 halted, 4 SIPI received).
    public var mpState: UInt32
}

/// Instructions this machine's KVM emulator cannot run but that have a safe meaning
/// the VMM can supply (see shared/notes/nested-kvm.md). Applied on emulating hosts
/// only: on hardware KVM guest code runs natively, and an emulation failure there is
/// a real error, reported as one.
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

/// CPU seconds of this whole process since it started (all threads; `CLOCK_PROCESS_CPUTIME_ID`).
public func processCPUSeconds() -> Double {
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
