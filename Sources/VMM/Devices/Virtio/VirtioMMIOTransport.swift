import Synchronization
import CKVM

/// The virtio-mmio transport, version 2 (virtio 1.2 §4.2): the register block the
/// guest programs, feature negotiation, queue setup, notification and interrupts.
///
/// Registers are accessed on vCPU threads (MMIO exits); queue notifications and host
/// input arrive on the event loop. One lock serialises both, and the device behind.
public final class VirtioMMIOTransport: BusDevice, @unchecked Sendable {
    public let name: String
    public let base: GuestAddress
    public let irq: UInt32
    private let memory: GuestMemory
    private let interrupt: @Sendable () -> Void
    private let log: @Sendable (String) -> Void
    private let lock = Mutex(())
    // Guarded by `lock`:
    private let device: any VirtioDevice
    private var queues: VirtioQueues
    private var deviceFeaturesSelect: UInt32 = 0
    private var driverFeaturesSelect: UInt32 = 0
    private var driverFeatures: UInt64 = 0
    private var queueSelect: UInt32 = 0
    private var status: UInt32 = 0
    private var interruptStatus: UInt32 = 0
    private var configGeneration: UInt32 = 0
    private var failed = false

    /// When true, queue notifications arrive through ioeventfds on the event loop
    /// instead of as MMIO exits.
    public var notifiesByEvent = false

    static let magic: UInt64 = 0x7472_6976            // "virt"
    static let vendor: UInt64 = 0x4d53_5253            // "SRSM"
    static let statusAcknowledge: UInt32 = 1, statusDriver: UInt32 = 2, statusDriverOK: UInt32 = 4
    static let statusFeaturesOK: UInt32 = 8, statusNeedsReset: UInt32 = 0x40, statusFailed: UInt32 = 0x80
    static let notifyOffset: UInt64 = 0x50

    public init(name: String, device: any VirtioDevice, base: GuestAddress, irq: UInt32, memory: GuestMemory,
                interrupt: @escaping @Sendable () -> Void, log: @escaping @Sendable (String) -> Void) {
        self.name = name
        self.device = device
        self.base = base
        self.irq = irq
        self.memory = memory
        self.interrupt = interrupt
        self.log = log
        self.queues = VirtioQueues(queues: device.queueSizes.map { Virtqueue(maxSize: $0) }, memory: memory)
    }

    /// The guest-physical address of the QueueNotify register (for ioeventfds).
    public var notifyAddress: GuestAddress { base + Self.notifyOffset }
    public var queueCount: Int { device.queueSizes.count }

    /// `virtio_mmio.device=` kernel parameter declaring this device.
    public var kernelParameter: String { Self.kernelParameter(base: base, irq: irq) }

    static func kernelParameter(base: GuestAddress, irq: UInt32) -> String {
        "virtio_mmio.device=4K@0x\(String(base.rawValue, radix: 16)):\(irq)"
    }

    public func read(offset: UInt64, length: Int) -> UInt64 {
        lock.withLock { _ in
            if offset >= 0x100 {
                return device.readConfig(offset: Int(offset - 0x100), length: length)
            }
            guard length == 4 else { return 0 }
            switch offset {
            case 0x000: return Self.magic
            case 0x004: return 2
            case 0x008: return UInt64(device.deviceType)
            case 0x00c: return Self.vendor
            case 0x010:
                let features = device.features
                return deviceFeaturesSelect == 0 ? features & 0xffff_ffff : deviceFeaturesSelect == 1 ? features >> 32 : 0
            case 0x034: return UInt64(selectedQueue?.maxSize ?? 0)
            case 0x044: return (selectedQueue?.ready ?? false) ? 1 : 0
            case 0x060: return UInt64(interruptStatus)
            case 0x070: return UInt64(status)
            case 0x0fc: return UInt64(configGeneration)
            default: return 0
            }
        }
    }

    public func write(offset: UInt64, length: Int, value: UInt64) {
        let notify: Bool = lock.withLock { _ in
            if offset >= 0x100 {
                device.writeConfig(offset: Int(offset - 0x100), length: length, value: value)
                return false
            }
            guard length == 4 else { return false }
            let v = UInt32(truncatingIfNeeded: value)
            switch offset {
            case 0x014: deviceFeaturesSelect = v
            case 0x020:
                if driverFeaturesSelect == 0 { driverFeatures = (driverFeatures & ~0xffff_ffff) | UInt64(v) }
                else if driverFeaturesSelect == 1 { driverFeatures = (driverFeatures & 0xffff_ffff) | (UInt64(v) << 32) }
            case 0x024: driverFeaturesSelect = v
            case 0x030: queueSelect = v
            case 0x038: updateSelectedQueue { $0.size = UInt16(truncatingIfNeeded: v) }
            case 0x044: setQueueReady(v == 1)
            case 0x050: return !notifiesByEvent && Int(v) < queueCount
            case 0x064: interruptStatus &= ~v
            case 0x070: setStatus(v)
            case 0x080: updateSelectedQueue { $0.descriptorTable = GuestAddress(($0.descriptorTable.rawValue & ~0xffff_ffff) | UInt64(v)) }
            case 0x084: updateSelectedQueue { $0.descriptorTable = GuestAddress(($0.descriptorTable.rawValue & 0xffff_ffff) | UInt64(v) << 32) }
            case 0x090: updateSelectedQueue { $0.availableRing = GuestAddress(($0.availableRing.rawValue & ~0xffff_ffff) | UInt64(v)) }
            case 0x094: updateSelectedQueue { $0.availableRing = GuestAddress(($0.availableRing.rawValue & 0xffff_ffff) | UInt64(v) << 32) }
            case 0x0a0: updateSelectedQueue { $0.usedRing = GuestAddress(($0.usedRing.rawValue & ~0xffff_ffff) | UInt64(v)) }
            case 0x0a4: updateSelectedQueue { $0.usedRing = GuestAddress(($0.usedRing.rawValue & 0xffff_ffff) | UInt64(v) << 32) }
            default: break
            }
            return false
        }
        if notify { queueNotified(Int(value)) }
    }

    /// A notification for queue `index` (from an MMIO write or its ioeventfd).
    public func queueNotified(_ index: Int) {
        let raise: Bool = lock.withLock { _ in
            guard !failed, status & Self.statusDriverOK != 0, queues.isReady(index) else { return false }
            do {
                try device.process(queue: index, queues: &queues)
            } catch {
                fail("queue \(index): \(error)")
            }
            return takeInterrupt()
        }
        if raise { interrupt() }
    }

    /// Runs `body` on the device with its queues, under the transport lock
    /// (host-side events such as console input), then raises an interrupt if needed.
    public func withDevice<D: VirtioDevice>(_ type: D.Type, _ body: (D, inout VirtioQueues) throws(Virtqueue.QueueError) -> Void) {
        let raise: Bool = lock.withLock { _ in
            guard !failed, status & Self.statusDriverOK != 0, let device = device as? D else { return false }
            do { try body(device, &queues) } catch { fail("\(error)") }
            return takeInterrupt()
        }
        if raise { interrupt() }
    }

    /// The device's statistics line, prefixed by the transport's name.
    public var statistics: String? {
        lock.withLock { _ in device.statistics.map { "\(name): \($0)" } }
    }

    /// Runs `body` on the device under the transport lock whatever the device's state
    /// (not activated, failed): for host-side bookkeeping that touches no queue.
    public func withDeviceAnyState<D: VirtioDevice>(_ type: D.Type, _ body: (D) -> Void) {
        lock.withLock { _ in
            if let device = device as? D { body(device) }
        }
    }

    // MARK: - snapshots

    /// The registers, queues and device state, with the guest stopped: first serves
    /// whatever the driver made available (a notification may still sit in an
    /// ioeventfd the stopped event loop never read), so nothing is in flight.
    public func captureState() throws(SnapshotError) -> DeviceSnapshot {
        for queue in 0..<queueCount { queueNotified(queue) }
        return try lock.withLock { _ throws(SnapshotError) -> DeviceSnapshot in
            let queueStates = queues.queues.map {
                QueueState(size: $0.size, ready: $0.ready, descriptorTable: $0.descriptorTable.rawValue,
                           availableRing: $0.availableRing.rawValue, usedRing: $0.usedRing.rawValue,
                           nextAvailable: $0.nextAvailable, nextUsed: $0.nextUsed)
            }
            let transport = TransportState(
                deviceFeaturesSelect: deviceFeaturesSelect, driverFeaturesSelect: driverFeaturesSelect,
                driverFeatures: driverFeatures, queueSelect: queueSelect, status: status, interruptStatus: interruptStatus,
                configGeneration: configGeneration, failed: failed, interruptPending: queues.interruptPending, queues: queueStates)
            let deviceState: [UInt8]
            do { deviceState = try device.captureState() } catch { throw .unsupported("\(name): \(error)") }
            return DeviceSnapshot(name: name, deviceType: device.deviceType, transport: transport, device: deviceState)
        }
    }

    /// Puts a captured state into this fresh transport (same device type, same queue
    /// count); every queue the driver had ready must lie inside guest RAM.
    public func restoreState(_ saved: DeviceSnapshot) throws(SnapshotError) {
        try lock.withLock { _ throws(SnapshotError) in
            guard saved.deviceType == device.deviceType, saved.name == name else {
                throw .malformed("slot of `\(name)` (type \(device.deviceType)) holds `\(saved.name)` (type \(saved.deviceType)) in the snapshot")
            }
            let t = saved.transport
            guard t.queues.count == queues.queues.count else {
                throw .malformed("\(name): \(t.queues.count) queues in the snapshot, the device has \(queues.queues.count)")
            }
            guard t.driverFeatures & ~device.features == 0 else {
                throw .malformed("\(name): driver features 0x\(String(t.driverFeatures, radix: 16)) not offered by this device")
            }
            var restored = queues.queues
            for (i, q) in t.queues.enumerated() {
                var queue = Virtqueue(maxSize: restored[i].maxSize)
                queue.size = q.size
                queue.descriptorTable = GuestAddress(q.descriptorTable)
                queue.availableRing = GuestAddress(q.availableRing)
                queue.usedRing = GuestAddress(q.usedRing)
                queue.restorePositions(nextAvailable: q.nextAvailable, nextUsed: q.nextUsed)
                if q.ready {
                    if let problem = queue.validate(in: memory) { throw .malformed("\(name): queue \(i): \(problem)") }
                    queue.ready = true
                }
                restored[i] = queue
            }
            queues.queues = restored
            queues.interruptPending = t.interruptPending
            deviceFeaturesSelect = t.deviceFeaturesSelect
            driverFeaturesSelect = t.driverFeaturesSelect
            driverFeatures = t.driverFeatures
            queueSelect = t.queueSelect
            status = t.status
            interruptStatus = t.interruptStatus
            configGeneration = t.configGeneration
            failed = t.failed
            do { try device.restoreState(saved.device, queues: &queues) } catch { throw .malformed("\(name): \(error)") }
        }
    }

    /// After a restore: serves what the driver made available before the snapshot
    /// (its notification went to the old VMM), and raises a pending interrupt.
    public func kickAfterRestore() {
        for queue in 0..<queueCount { queueNotified(queue) }
        let raise = lock.withLock { _ in interruptStatus != 0 }
        if raise { interrupt() }
    }

    // MARK: - under the lock

    private var selectedQueue: Virtqueue? {
        Int(queueSelect) < queues.queues.count ? queues.queues[Int(queueSelect)] : nil
    }

    private func updateSelectedQueue(_ change: (inout Virtqueue) -> Void) {
        guard Int(queueSelect) < queues.queues.count, !queues.queues[Int(queueSelect)].ready else { return }
        change(&queues.queues[Int(queueSelect)])
    }

    private func setQueueReady(_ ready: Bool) {
        let i = Int(queueSelect)
        guard i < queues.queues.count else { return }
        if ready, let problem = queues.queues[i].validate(in: memory) {
            fail("queue \(i) set up with \(problem)")
            return
        }
        queues.queues[i].ready = ready
    }

    private func setStatus(_ value: UInt32) {
        if value == 0 {
            reset()
            return
        }
        var value = value
        if value & Self.statusFeaturesOK != 0, status & Self.statusFeaturesOK == 0 {
            let offered = device.features
            // Refuse features we did not offer, and legacy (pre-1.0) drivers.
            if driverFeatures & ~offered != 0 || driverFeatures & VirtioFeature.version1 == 0 {
                log("\(name): driver features 0x\(String(driverFeatures, radix: 16)) not a subset of 0x\(String(offered, radix: 16)) with VERSION_1")
                value &= ~Self.statusFeaturesOK
            }
        }
        if value & Self.statusDriverOK != 0, status & Self.statusDriverOK == 0 {
            device.activate(features: driverFeatures, queues: &queues)
        }
        status = value | (status & Self.statusNeedsReset)
    }

    private func reset() {
        device.reset()
        for i in queues.queues.indices { queues.queues[i].reset() }
        queues.interruptPending = false
        deviceFeaturesSelect = 0; driverFeaturesSelect = 0; driverFeatures = 0
        queueSelect = 0; status = 0; interruptStatus = 0; failed = false
    }

    /// A guest error stops this device (DEVICE_NEEDS_RESET), never the VMM.
    private func fail(_ message: String) {
        guard !failed else { return }
        failed = true
        status |= Self.statusNeedsReset
        interruptStatus |= 2       // configuration change: tells the driver to look at status
        log("\(name): device stopped: \(message)")
        interrupt()
    }

    private func takeInterrupt() -> Bool {
        guard queues.interruptPending else { return false }
        queues.interruptPending = false
        interruptStatus |= 1
        return true
    }
}
