import Synchronization

/// virtio-balloon (virtio 1.2 §5.5, device ID 5) for free page reporting only
/// (VIRTIO_BALLOON_F_REPORTING, §5.5.6.5): memory the guest frees returns to the host.
///
/// The guest's page allocator reports free blocks (2 MiB and up on the sm-runc kernel) on
/// the reporting queue, each buffer one guest-physical range; the device releases
/// the host pages behind each range (madvise MADV_DONTNEED on the guest RAM
/// mapping, right for anonymous and snapshot-backed MAP_PRIVATE RAM alike: the guest
/// does not rely on the content of reported pages, and PAGE_POISON is not offered),
/// then returns the buffers as used. The guest may reuse the pages only after that,
/// so a release never races a new use.
///
/// The balloon proper is never inflated: `num_pages` stays 0. Inflate and deflate
/// requests a driver sends anyway are checked and acknowledged, nothing more.
///
/// With only VERSION_1 and REPORTING negotiated the queues are inflateq 0,
/// deflateq 1, reporting_vq 2 (queues of features not negotiated are skipped).
///
/// Everything the guest writes is hostile: each range is checked against guest RAM
/// and page alignment before anything is released, and a bad chain is refused
/// (returned unused, counted, logged), never fatal. Broken descriptors (indices,
/// loops, indirect) stop the device as for every virtio device.
public final class VirtioBalloon: VirtioDevice, @unchecked Sendable {
    public let deviceType: UInt32 = 5
    /// VIRTIO_BALLOON_F_REPORTING.
    public static let featureReporting: UInt64 = 1 << 5
    public let features: UInt64 = VirtioFeature.version1 | VirtioBalloon.featureReporting
    /// inflateq, deflateq, reporting_vq. Linux needs at least 32 descriptors on the
    /// reporting queue (PAGE_REPORTING_CAPACITY, one report's scatter list).
    public let queueSizes: [UInt16] = [16, 16, 32]
    public static let inflateQueue = 0, deflateQueue = 1, reportingQueue = 2
    /// The balloon's page unit (VIRTIO_BALLOON_PFN_SHIFT).
    public static let pageSize = 4096
    /// At most this many bytes of PFNs per inflate/deflate chain (Linux sends up to 256).
    public static let maximumPFNBytes = 4096
    /// Refusals logged one by one before they are only counted.
    static let loggedRefusals = 10

    /// What the device did, for tests, logs and snapshots.
    public struct Statistics: Sendable, Equatable {
        /// Reporting chains served (their ranges released).
        public var reports: UInt64 = 0
        /// Bytes released to the host.
        public var releasedBytes: UInt64 = 0
        /// Chains refused as malformed (nothing released), on any queue.
        public var refusedChains: UInt64 = 0
        /// Well-formed inflate and deflate chains acknowledged.
        public var inflateChains: UInt64 = 0
        public var deflateChains: UInt64 = 0
        /// Ranges madvise failed on (the chain is still returned).
        public var failedReleases: UInt64 = 0
    }

    private let log: @Sendable (String) -> Void
    private let counters = Mutex(Statistics())
    // Guarded by the transport lock:
    /// `actual`, written by the driver (pages in the balloon).
    private var actual: UInt32 = 0

    public init(log: @escaping @Sendable (String) -> Void = { _ in }) {
        self.log = log
    }

    public var statistics: Statistics { counters.withLock { $0 } }

    // MARK: - configuration space (struct virtio_balloon_config)

    /// num_pages (0, the device's target), actual (the driver's), free_page_hint_cmd_id
    /// (0: no hinting), poison_val (0: PAGE_POISON not offered).
    static let configSize = 16

    public func readConfig(offset: Int, length: Int) -> UInt64 {
        var config = [UInt8](repeating: 0, count: Self.configSize)
        put32(&config, 4, actual)
        guard offset >= 0, length > 0, length <= 8, offset + length <= config.count else { return 0 }
        var value: UInt64 = 0
        for i in 0..<length { value |= UInt64(config[offset + i]) << (8 * UInt64(i)) }
        return value
    }

    public func writeConfig(offset: Int, length: Int, value: UInt64) {
        // Only `actual` (bytes 4..<8) is the driver's; any byte-wise write into it counts.
        guard offset >= 0, length > 0, length <= 8 else { return }
        for i in 0..<length where (4..<8).contains(offset + i) {
            let shift = UInt32(8 * (offset + i - 4))
            let byte = UInt32(truncatingIfNeeded: value >> (8 * UInt64(i))) & 0xff
            actual = (actual & ~(0xff << shift)) | (byte << shift)
        }
    }

    public func activate(features: UInt64, queues: inout VirtioQueues) {}

    public func reset() { actual = 0 }

    // MARK: - queues

    public func process(queue index: Int, queues: inout VirtioQueues) throws(Virtqueue.QueueError) {
        switch index {
        case Self.reportingQueue:
            while let chain = try queues.pop(index, checkingBuffers: false) {
                serveReport(chain, memory: queues.memory)
                try queues.complete(index, chain, written: 0)
            }
        case Self.inflateQueue, Self.deflateQueue:
            while let chain = try queues.pop(index, checkingBuffers: false) {
                acknowledgePFNs(chain, inflate: index == Self.inflateQueue, memory: queues.memory)
                try queues.complete(index, chain, written: 0)
            }
        default:
            break
        }
    }

    /// A report: device-writable buffers, each a page-aligned range of free guest RAM.
    /// All are checked before any is released.
    private func serveReport(_ chain: Virtqueue.Chain, memory: GuestMemory) {
        let alignment = UInt64(max(Self.pageSize, GuestMemory.hostPageSize))
        if !chain.readable.isEmpty || chain.writable.isEmpty {
            return refuse("report \(chain.head): \(chain.readable.count) device-readable buffer(s), \(chain.writable.count) writable")
        }
        for buffer in chain.writable {
            guard buffer.length > 0, buffer.address.rawValue % alignment == 0, UInt64(buffer.length) % alignment == 0 else {
                return refuse("report \(chain.head): range of \(buffer.length) bytes at \(buffer.address) is not \(alignment)-byte aligned")
            }
            guard memory.contains(buffer.address, length: Int(buffer.length)) else {
                return refuse("report \(chain.head): range of \(buffer.length) bytes at \(buffer.address) is outside guest RAM")
            }
        }
        var released: UInt64 = 0, failures: UInt64 = 0
        for buffer in chain.writable {
            do {
                try memory.discard(at: buffer.address, count: Int(buffer.length))
                released += UInt64(buffer.length)
            } catch {
                failures += 1
                log("virtio-balloon: \(error)")
            }
        }
        let total = counters.withLock { stats -> UInt64 in
            stats.reports += 1
            stats.releasedBytes += released
            stats.failedReleases += failures
            return stats.releasedBytes
        }
        // Reports come at most every couple of seconds (the guest's reporting delay).
        log("virtio-balloon: released \(released >> 10) KiB in \(chain.writable.count) range(s), \(total >> 20) MiB in all")
    }

    /// Inflate/deflate: device-readable buffers of little-endian 32-bit PFNs inside RAM.
    private func acknowledgePFNs(_ chain: Virtqueue.Chain, inflate: Bool, memory: GuestMemory) {
        let what = inflate ? "inflate" : "deflate"
        let length = chain.readableLength
        guard chain.writable.isEmpty, length > 0, length % 4 == 0, length <= Self.maximumPFNBytes else {
            return refuse("\(what) \(chain.head): \(length) bytes of PFNs, \(chain.writable.count) writable buffer(s)")
        }
        guard chain.readable.allSatisfy({ memory.contains($0.address, length: Int($0.length)) }),
              let bytes = try? chain.readAll(memory, limit: Self.maximumPFNBytes) else {
            return refuse("\(what) \(chain.head): PFN buffer outside guest RAM")
        }
        let pages = memory.size / UInt64(Self.pageSize)
        for i in stride(from: 0, to: bytes.count, by: 4) {
            let pfn = UInt32(bytes[i]) | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2]) << 16 | UInt32(bytes[i + 3]) << 24
            guard UInt64(pfn) < pages else { return refuse("\(what) \(chain.head): PFN 0x\(String(pfn, radix: 16)) outside guest RAM") }
        }
        counters.withLock { if inflate { $0.inflateChains += 1 } else { $0.deflateChains += 1 } }
    }

    /// A malformed chain: nothing is done, it goes back unused.
    private func refuse(_ why: String) {
        let count = counters.withLock { stats -> UInt64 in
            stats.refusedChains += 1
            return stats.refusedChains
        }
        if count <= UInt64(Self.loggedRefusals) {
            log("virtio-balloon: refused \(why)" + (count == UInt64(Self.loggedRefusals) ? " (further refusals are only counted)" : ""))
        }
    }

    // MARK: - snapshots

    /// `actual` and the statistics (no request is ever in flight at a capture: the
    /// transport serves every queue first).
    public func captureState() throws(SnapshotError) -> [UInt8] {
        let s = statistics
        var writer = SnapshotWriter()
        writer.u32(actual)
        for value in [s.reports, s.releasedBytes, s.refusedChains, s.inflateChains, s.deflateChains, s.failedReleases] {
            writer.u64(value)
        }
        return writer.bytes
    }

    public func restoreState(_ bytes: [UInt8], queues: inout VirtioQueues) throws(SnapshotError) {
        var reader = SnapshotReader(bytes, what: "virtio-balloon state")
        let actual = try reader.u32()
        var s = Statistics()
        s.reports = try reader.u64()
        s.releasedBytes = try reader.u64()
        s.refusedChains = try reader.u64()
        s.inflateChains = try reader.u64()
        s.deflateChains = try reader.u64()
        s.failedReleases = try reader.u64()
        try reader.finish()
        self.actual = actual
        counters.withLock { $0 = s }
    }
}
