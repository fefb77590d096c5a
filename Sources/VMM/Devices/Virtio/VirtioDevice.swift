/// What a virtio device implements; the MMIO transport does the rest.
/// All methods are called with the transport's lock held, so a device needs no
/// lock of its own for state only these methods touch.
public protocol VirtioDevice: AnyObject {
    /// Virtio device ID (3 console, 19 vsock, 26 fs...).
    var deviceType: UInt32 { get }
    /// Feature bits offered, including VIRTIO_F_VERSION_1.
    var features: UInt64 { get }
    /// Maximum size of each queue; the count is the number of queues.
    var queueSizes: [UInt16] { get }
    /// Device-specific configuration space.
    func readConfig(offset: Int, length: Int) -> UInt64
    func writeConfig(offset: Int, length: Int, value: UInt64)
    /// The driver set DRIVER_OK with these features.
    func activate(features: UInt64, queues: inout VirtioQueues)
    /// The driver notified queue `index`.
    func process(queue index: Int, queues: inout VirtioQueues) throws(Virtqueue.QueueError)
    /// The driver reset the device.
    func reset()
    /// The device's own state for a snapshot (called under the transport lock, with
    /// the guest stopped); throws when the device is not at a point it can be saved.
    func captureState() throws(SnapshotError) -> [UInt8]
    /// Takes back what `captureState` saved, in a fresh device of a restored machine.
    func restoreState(_ bytes: [UInt8], queues: inout VirtioQueues) throws(SnapshotError)
    /// What the device served so far, one line for diagnostics (nil: nothing to say).
    var statistics: String? { get }
}

extension VirtioDevice {
    public var statistics: String? { nil }
    /// Stateless devices save nothing.
    public func captureState() throws(SnapshotError) -> [UInt8] { [] }
    public func restoreState(_ bytes: [UInt8], queues: inout VirtioQueues) throws(SnapshotError) {
        guard bytes.isEmpty else { throw .malformed("device type \(deviceType): \(bytes.count) bytes of state for a stateless device") }
    }
}

/// Feature bits common to all devices (virtio 1.2 §6).
public enum VirtioFeature {
    public static let version1: UInt64 = 1 << 32
    public static let accessPlatform: UInt64 = 1 << 33
}

/// The queues of one device plus what a device needs to complete requests:
/// guest memory and "used buffers" interrupt bookkeeping.
public struct VirtioQueues {
    public var queues: [Virtqueue]
    public let memory: GuestMemory
    /// Set when a used buffer was added to a queue whose driver wants an interrupt.
    public var interruptPending = false

    public mutating func pop(_ index: Int, checkingBuffers: Bool = true) throws(Virtqueue.QueueError) -> Virtqueue.Chain? {
        try queues[index].pop(memory, checkingBuffers: checkingBuffers)
    }

    public mutating func complete(_ index: Int, _ chain: Virtqueue.Chain, written: Int) throws(Virtqueue.QueueError) {
        try queues[index].pushUsed(head: chain.head, length: UInt32(written), memory)
        if queues[index].wantsInterrupt(memory) { interruptPending = true }
    }

    public mutating func unpop(_ index: Int) { queues[index].unpop() }

    /// Sets or clears VRING_USED_F_NO_NOTIFY on queue `index`.
    public func setNotifications(_ index: Int, enabled: Bool) {
        guard isReady(index) else { return }
        queues[index].setNotifications(enabled: enabled, memory)
    }
    public func isReady(_ index: Int) -> Bool { index < queues.count && queues[index].ready }
}
