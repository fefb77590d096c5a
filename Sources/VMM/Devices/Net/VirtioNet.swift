#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// virtio-net (virtio 1.2 §5.1), one queue pair, checksum and TSO offloads, no
/// control queue, backed by a tap descriptor (`IFF_TAP | IFF_NO_PI | IFF_VNET_HDR`,
/// non-blocking) that the host side opened in the container's network namespace.
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
    /// Checksum and TCP segmentation offloads both ways, as Firecracker's device: the
    /// virtio-net header goes to and comes from the tap unchanged (IFF_VNET_HDR, 12
    /// bytes, `TapDevice.open`), so the guest sends and takes up to 64 KiB TCP segments
    /// and partial checksums, and the host's stack does the rest. Each frame is guest
    /// kernel work, so fewer, larger frames is most of the speed (emulated hosts above
    /// all). No MRG_RXBUF: with GUEST_TSO the driver posts 64 KiB receive chains.
    public let features: UInt64 = VirtioFeature.version1 | VirtioNet.offloads
    public static let offloads: UInt64 = 1 << 0 | 1 << 1 | 1 << 7 | 1 << 8 | 1 << 11 | 1 << 12
    // CSUM, GUEST_CSUM, GUEST_TSO4, GUEST_TSO6, HOST_TSO4, HOST_TSO6
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
                // Header and frame as they are: the tap checks the header (a bad one is
                // refused with EINVAL, counted as a drop).
                let n = bytes.withUnsafeBytes { raw in Glibc.write(tap.rawValue, raw.baseAddress!, raw.count) }
                sent = n == bytes.count
                if sent {
                    counters.withLock { $0.transmittedFrames += 1; $0.transmittedBytes += n - Self.headerSize }
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
            // The tap writes the 10-byte virtio_net_hdr and skips num_buffers.
            let got = frame.withUnsafeMutableBytes { raw in
                Glibc.read(tap.rawValue, raw.baseAddress!, Self.headerSize + Self.maxFrame)
            }
            let error = errno
            guard got > Self.headerSize else {
                queues.unpop(Self.receiveQueue)
                if got >= 0 {
                    counters.withLock { $0.receiveErrors += 1 }     // a runt: dropped, on to the next
                    continue
                }
                if error != EAGAIN && error != EINTR { counters.withLock { $0.receiveErrors += 1 } }
                watchTap(true)
                return
            }
            let n = got - Self.headerSize
            // num_buffers 1 (one chain per frame: no MRG_RXBUF).
            frame[10] = 1
            frame[11] = 0
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
