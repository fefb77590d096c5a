#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// virtio-net (virtio 1.2 §5.1), one queue pair, no offloads, no control queue,
/// backed by a tap descriptor (`IFF_TAP | IFF_NO_PI`, non-blocking) that the host
/// side opened in the container's network namespace.
///
/// The device is always in the machine (the snapshot holds it with the driver bound
/// and receive buffers posted) and has no identity of its own: no MAC in its
/// configuration space (VIRTIO_NET_F_MAC is not offered, so the guest driver picks a
/// random one at probe, and the agent sets the engine's MAC after the restore). A
/// machine without a network has no tap: frames the guest sends are dropped and
/// counted, and nothing is ever received.
///
/// Threads: the transmit and receive queue notifications and the tap's readiness all
/// arrive on the machine's network loop (`sm-net`, its own seccomp list); the work is
/// done under the transport lock like every device's.
///
/// Hostile input: a transmit chain is read up to `maxFrame` plus the header (a
/// longer one is dropped, counted), a receive chain too short for a frame gets the
/// frame cut off (counted, as the driver checks the length it is given); a tap error
/// drops that frame. Nothing here ends the VMM.
public final class VirtioNet: VirtioDevice, @unchecked Sendable {
    public let deviceType: UInt32 = 1
    /// VERSION_1 only: no checksum or segmentation offloads, so every frame the tap
    /// gives is a plain Ethernet frame of at most the MTU, and so is every frame the
    /// guest sends (Firecracker's device offers the offloads; a later step).
    public let features: UInt64 = VirtioFeature.version1
    /// receiveq1, transmitq1.
    public let queueSizes: [UInt16] = [256, 256]
    static let receiveQueue = 0, transmitQueue = 1
    /// struct virtio_net_hdr_v1 (with num_buffers, present with VERSION_1).
    public static let headerSize = 12
    /// The largest Ethernet frame either way (no offloads: MTU 65521 at most).
    public static let maxFrame = 65535 + 18
    /// Frames moved per wake-up before the loop serves others.
    static let batch = 64

    public struct Statistics: Sendable, Equatable {
        public var receivedFrames = 0, receivedBytes = 0
        public var transmittedFrames = 0, transmittedBytes = 0
        /// Frames from the tap cut short (receive buffer too small) or lost (read error).
        public var receiveErrors = 0
        /// Guest frames dropped: no tap, too long, too short, or the tap refused them.
        public var transmitDropped = 0
    }

    private let tap: OwnedDescriptor?
    private let loop: EventLoop?
    private let log: @Sendable (String) -> Void
    private let counters = Mutex(Statistics())
    // Guarded by the transport lock:
    private var watchingTap = false
    private var frame: [UInt8]

    /// `tap`: the backend (nil: no network); `loop`: where the tap is watched.
    public init(tap: OwnedDescriptor?, loop: EventLoop?, log: @escaping @Sendable (String) -> Void) {
        self.tap = tap
        self.loop = loop
        self.log = log
        frame = [UInt8](repeating: 0, count: Self.headerSize + Self.maxFrame)
    }

    public var statistics: Statistics { counters.withLock { $0 } }
    public var hasBackend: Bool { tap != nil }

    public func readConfig(offset: Int, length: Int) -> UInt64 {
        // mac[6] (not offered), status (not offered), max_virtqueue_pairs 1, mtu (not offered).
        var config = [UInt8](repeating: 0, count: 12)
        config[8] = 1
        guard offset >= 0, length > 0, offset + length <= config.count else { return 0 }
        var value: UInt64 = 0
        for i in 0..<length { value |= UInt64(config[offset + i]) << (8 * UInt64(i)) }
        return value
    }

    public func writeConfig(offset: Int, length: Int, value: UInt64) {}

    public func activate(features: UInt64, queues: inout VirtioQueues) {
        watchTap(true)
    }

    public func reset() { watchTap(false) }

    /// Stateless for a snapshot; a restored device watches its (new) tap at once:
    /// the driver's receive buffers are in the restored queue.
    public func restoreState(_ bytes: [UInt8], queues: inout VirtioQueues) throws(SnapshotError) {
        guard bytes.isEmpty else { throw .malformed("virtio-net: \(bytes.count) bytes of state for a stateless device") }
        if queues.isReady(Self.receiveQueue) { watchTap(true) }
    }

    public func process(queue index: Int, queues: inout VirtioQueues) throws(Virtqueue.QueueError) {
        switch index {
        case Self.transmitQueue: try transmit(&queues)
        case Self.receiveQueue: try receive(&queues)   // new buffers: take what the tap holds
        default: break
        }
    }

    /// The tap is readable (on the network loop, under the transport lock).
    func tapReadable(_ queues: inout VirtioQueues) throws(Virtqueue.QueueError) {
        try receive(&queues)
    }

    /// The tap is readable but the device is not live (reset, failed, not yet
    /// activated): stop watching until the driver activates it, or the loop spins.
    func tapIdle() { watchTap(false) }

    // MARK: - transmit

    private func transmit(_ queues: inout VirtioQueues) throws(Virtqueue.QueueError) {
        while let chain = try queues.pop(Self.transmitQueue) {
            let length = chain.readableLength
            var sent = false
            if let tap, length > Self.headerSize, length <= Self.headerSize + Self.maxFrame {
                let bytes: [UInt8]
                do { bytes = try chain.readAll(queues.memory, limit: Self.headerSize + Self.maxFrame) } catch { throw .memory(error) }
                let n = bytes.withUnsafeBytes { raw in
                    Glibc.write(tap.rawValue, raw.baseAddress! + Self.headerSize, raw.count - Self.headerSize)
                }
                sent = n == bytes.count - Self.headerSize
                if sent {
                    counters.withLock { $0.transmittedFrames += 1; $0.transmittedBytes += n }
                }
            }
            if !sent { counters.withLock { $0.transmitDropped += 1 } }
            try queues.complete(Self.transmitQueue, chain, written: 0)
        }
    }

    // MARK: - receive

    private func receive(_ queues: inout VirtioQueues) throws(Virtqueue.QueueError) {
        guard let tap else { return }
        guard queues.isReady(Self.receiveQueue) else { return watchTap(false) }
        for _ in 0..<Self.batch {
            guard let chain = try queues.pop(Self.receiveQueue) else {
                // No buffer: leave frames in the tap (it queues, then drops, as a NIC
                // would) until the driver posts buffers and notifies.
                queues.setNotifications(Self.receiveQueue, enabled: true)
                watchTap(false)
                return
            }
            let n = frame.withUnsafeMutableBytes { raw in
                Glibc.read(tap.rawValue, raw.baseAddress! + Self.headerSize, Self.maxFrame)
            }
            if n <= 0 {
                queues.unpop(Self.receiveQueue)
                if n < 0 && errno != EAGAIN && errno != EINTR {
                    counters.withLock { $0.receiveErrors += 1 }
                }
                watchTap(true)
                return
            }
            // virtio_net_hdr_v1: no flags, GSO_NONE, num_buffers 1.
            for i in 0..<Self.headerSize { frame[i] = 0 }
            frame[10] = 1
            let total = Self.headerSize + n
            let written: Int
            do { written = try chain.writeAll(frame[0..<total], queues.memory) } catch { throw .memory(error) }
            try queues.complete(Self.receiveQueue, chain, written: written)
            counters.withLock {
                if written == total { $0.receivedFrames += 1; $0.receivedBytes += n } else { $0.receiveErrors += 1 }
            }
        }
        watchTap(true)
    }

    private func watchTap(_ on: Bool) {
        guard let tap, let loop, on != watchingTap else { return }
        do {
            try loop.setWatching(tap, on)
            watchingTap = on
        } catch {
            log("virtio-net: \(error)")
        }
    }
}
