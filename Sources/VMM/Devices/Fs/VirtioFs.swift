#if canImport(Glibc)
import Glibc
#endif

/// virtio-fs (virtio 1.2 §5.11): one host directory shared with the guest, which
/// mounts it with `mount -t virtiofs <tag> <dir>`. Queue 0 is the high-priority
/// queue (FORGET, INTERRUPT), queue 1 the one request queue; both carry FUSE
/// messages, served synchronously by `FuseServer`.
///
/// A malformed request or a failed file operation is answered with a FUSE error and
/// the device carries on; only a virtqueue-level error (a hostile chain, thrown by
/// `pop`) stops the device, as the transport decides.
public final class VirtioFs: VirtioDevice, @unchecked Sendable {
    public let deviceType: UInt32 = 26
    public let features: UInt64 = VirtioFeature.version1
    public let queueSizes: [UInt16]
    static let hiprioQueue = 0, requestQueue = 1
    /// The longest tag the config space holds (virtio_fs_config.tag).
    public static let tagCapacity = 36

    public let tag: String
    // Guarded by the transport lock (all VirtioDevice methods run under it):
    public let server: FuseServer
    private let config: [UInt8]

    public enum ConfigurationError: Error, CustomStringConvertible, Equatable {
        /// The tag is empty, longer than 36 bytes, or contains a NUL.
        case invalidTag(String)

        public var description: String {
            switch self {
            case .invalidTag(let tag): return "virtio-fs tag `\(tag)`: must be 1 to 36 bytes without NUL"
            }
        }
    }

    /// - Parameters:
    ///   - requestQueueSize: bounds the guest's request size too: Linux caps a request
    ///     at (queue size - 4) pages, since there are no indirect descriptors.
    public init(tag: String, server: FuseServer, requestQueueSize: UInt16 = 256) throws(ConfigurationError) {
        let bytes = Array(tag.utf8)
        guard !bytes.isEmpty, bytes.count <= Self.tagCapacity, !bytes.contains(0) else { throw .invalidTag(tag) }
        self.tag = tag
        self.server = server
        self.queueSizes = [128, requestQueueSize]
        // struct virtio_fs_config: tag[36] (NUL-padded), le32 num_request_queues.
        var config = bytes + [UInt8](repeating: 0, count: Self.tagCapacity - bytes.count)
        config += [1, 0, 0, 0]
        self.config = config
    }

    public func readConfig(offset: Int, length: Int) -> UInt64 {
        guard offset >= 0, length > 0, length <= 8, offset <= config.count - length else { return 0 }
        var value: UInt64 = 0
        for i in 0..<length { value |= UInt64(config[offset + i]) << (8 * UInt64(i)) }
        return value
    }

    /// The config space is read-only.
    public func writeConfig(offset: Int, length: Int, value: UInt64) {}

    public func activate(features: UInt64, queues: inout VirtioQueues) {}

    public func reset() { server.reset() }

    public var statistics: String? { server.statistics }

    public func captureState() throws(SnapshotError) -> [UInt8] { try server.captureState() }

    public func restoreState(_ bytes: [UInt8], queues: inout VirtioQueues) throws(SnapshotError) {
        try server.restoreState(bytes)
    }

    public func process(queue index: Int, queues: inout VirtioQueues) throws(Virtqueue.QueueError) {
        guard index == Self.hiprioQueue || index == Self.requestQueue else { return }
        while let chain = try queues.pop(index) {
            let written: Int
            do { written = try serve(chain, queues.memory) } catch { throw .memory(error) }
            try queues.complete(index, chain, written: written)
        }
    }

    /// Runs one FUSE request and writes its reply; returns the bytes written.
    func serve(_ chain: Virtqueue.Chain, _ memory: GuestMemory) throws(GuestMemoryError) -> Int {
        let request = try chain.readAll(memory, limit: server.limits.maxRequest)
        guard let reply = server.handle(request, arrivedLength: chain.readableLength) else { return 0 }
        return try Self.write(reply, into: chain, memory)
    }

    /// Writes a reply into the chain's writable buffers. A reply that does not fit
    /// (the guest gave less room than its own request asked for) becomes a bare
    /// -ERANGE header; without room even for that, nothing is written.
    static func write(_ reply: [UInt8], into chain: Virtqueue.Chain, _ memory: GuestMemory) throws(GuestMemoryError) -> Int {
        let capacity = chain.writableLength
        var bytes = reply
        if bytes.count > capacity {
            guard capacity >= FuseConstant.outHeaderSize, reply.count >= FuseConstant.outHeaderSize else { return 0 }
            let unique = reply[8..<16].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            bytes = FuseWriter.error(unique: unique, ERANGE)
        }
        var offset = 0
        var failure: GuestMemoryError?
        bytes.withUnsafeBytes { raw in
            for buffer in chain.writable where offset < raw.count {
                let n = min(Int(buffer.length), raw.count - offset)
                do throws(GuestMemoryError) {
                    try memory.write(bytes: UnsafeRawBufferPointer(rebasing: raw[offset..<offset + n]), at: buffer.address)
                } catch {
                    failure = error
                    return
                }
                offset += n
            }
        }
        if let failure { throw failure }
        return offset
    }
}
