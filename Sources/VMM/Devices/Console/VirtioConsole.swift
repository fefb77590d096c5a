import Synchronization

/// virtio-console (virtio 1.2 §5.3), one port, no multiport: the guest's `hvc0`.
/// Guest output goes to `output` and into a bounded tail kept for diagnostics
/// (the last lines before a guest crash); host input is queued, bounded, for the
/// guest's receive queue.
public final class VirtioConsole: VirtioDevice, @unchecked Sendable {
    public let deviceType: UInt32 = 3
    public let features: UInt64 = VirtioFeature.version1 | (1 << 0)   // VIRTIO_CONSOLE_F_SIZE
    /// receiveq, transmitq. The receive queue is small: the driver fills it at probe
    /// time, and each buffer is guest kernel work (emulated on nested hosts).
    public let queueSizes: [UInt16] = [16, 64]
    static let receiveQueue = 0, transmitQueue = 1
    /// Bounds on what one guest request and the host input buffer may hold.
    public static let maxChainBytes = 1 << 20
    public static let maxPendingInput = 64 << 10
    public static let tailCapacity = 8 << 10

    private let output: @Sendable ([UInt8]) -> Void
    // Guarded by the transport lock:
    private var pendingInput: [UInt8] = []
    private var columns: UInt16 = 80, rows: UInt16 = 24
    // Read from other threads:
    private let tailBuffer = Mutex<[UInt8]>([])

    public init(output: @escaping @Sendable ([UInt8]) -> Void) {
        self.output = output
    }

    /// The last bytes the guest wrote (at most `tailCapacity`).
    public var tail: [UInt8] { tailBuffer.withLock { $0 } }

    public func readConfig(offset: Int, length: Int) -> UInt64 {
        var config = [UInt8](repeating: 0, count: 12)
        put16(&config, 0, columns)
        put16(&config, 2, rows)
        put32(&config, 4, 1)                  // max_nr_ports
        guard offset >= 0, length > 0, offset + length <= config.count else { return 0 }
        var value: UInt64 = 0
        for i in 0..<length { value |= UInt64(config[offset + i]) << (8 * UInt64(i)) }
        return value
    }

    public func writeConfig(offset: Int, length: Int, value: UInt64) {
        // emerg_wr (offset 8) is only valid with VIRTIO_CONSOLE_F_EMERG_WRITE, which we do not offer.
    }

    public func activate(features: UInt64, queues: inout VirtioQueues) {
        updateReceiveNotifications(&queues)
    }

    /// The driver need not notify new receive buffers while there is no input to put
    /// in them (VRING_USED_F_NO_NOTIFY): it saves a notification per buffer at probe.
    /// With input waiting, notifications are on so the input moves as soon as it can.
    private func updateReceiveNotifications(_ queues: inout VirtioQueues) {
        queues.setNotifications(Self.receiveQueue, enabled: !pendingInput.isEmpty)
    }

    public func reset() { pendingInput.removeAll() }

    /// Snapshot state: the window size and host input the guest has not taken yet.
    public func captureState() throws(SnapshotError) -> [UInt8] {
        var writer = SnapshotWriter()
        writer.u32(UInt32(columns))
        writer.u32(UInt32(rows))
        writer.blob(pendingInput)
        return writer.bytes
    }

    public func restoreState(_ bytes: [UInt8], queues: inout VirtioQueues) throws(SnapshotError) {
        var reader = SnapshotReader(bytes, what: "virtio-console state")
        columns = try reader.u16(in: "columns")
        rows = try reader.u16(in: "rows")
        pendingInput = try reader.blob(maximum: Self.maxPendingInput, of: "pending input")
        try reader.finish()
    }

    public func process(queue index: Int, queues: inout VirtioQueues) throws(Virtqueue.QueueError) {
        switch index {
        case Self.transmitQueue:
            while let chain = try queues.pop(index) {
                let bytes: [UInt8]
                do { bytes = try chain.readAll(queues.memory, limit: Self.maxChainBytes) } catch { throw .memory(error) }
                try queues.complete(index, chain, written: 0)
                if !bytes.isEmpty { emit(bytes) }
            }
        case Self.receiveQueue:
            try deliverInput(&queues)
        default:
            break
        }
    }

    /// Host input for the guest (bounded: excess is dropped, as a full UART would).
    public func enqueueInput(_ bytes: [UInt8], queues: inout VirtioQueues) throws(Virtqueue.QueueError) {
        pendingInput += bytes.prefix(max(0, Self.maxPendingInput - pendingInput.count))
        try deliverInput(&queues)
    }

    private func deliverInput(_ queues: inout VirtioQueues) throws(Virtqueue.QueueError) {
        while !pendingInput.isEmpty, queues.isReady(Self.receiveQueue), let chain = try queues.pop(Self.receiveQueue) {
            let written: Int
            do { written = try chain.writeAll(pendingInput[...], queues.memory) } catch { throw .memory(error) }
            pendingInput.removeFirst(written)
            try queues.complete(Self.receiveQueue, chain, written: written)
        }
        updateReceiveNotifications(&queues)
    }

    private func emit(_ bytes: [UInt8]) {
        tailBuffer.withLock { tail in
            tail += bytes.suffix(Self.tailCapacity)
            if tail.count > Self.tailCapacity { tail.removeFirst(tail.count - Self.tailCapacity) }
        }
        output(bytes)
    }
}
