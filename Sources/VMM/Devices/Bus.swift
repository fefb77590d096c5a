import Synchronization

/// A device on the MMIO or port-I/O bus. Called on the vCPU thread that exited.
/// `offset` is relative to the device's base; `length` is 1, 2, 4 or 8.
public protocol BusDevice: AnyObject, Sendable {
    func read(offset: UInt64, length: Int) -> UInt64
    func write(offset: UInt64, length: Int, value: UInt64)
}

/// Address ranges to devices. Built before the vCPUs start, read-only after.
public struct Bus: Sendable {
    struct Entry: Sendable {
        var base: UInt64
        var size: UInt64
        var device: any BusDevice
    }
    private var entries: [Entry] = []
    public let name: String

    public init(name: String) { self.name = name }

    public enum InsertError: Error, CustomStringConvertible {
        case overlap(bus: String, base: UInt64, size: UInt64)
        public var description: String {
            switch self {
            case let .overlap(bus, base, size):
                return "\(bus) bus: device at 0x\(String(base, radix: 16)) (size 0x\(String(size, radix: 16))) overlaps another"
            }
        }
    }

    public mutating func insert(_ device: any BusDevice, base: UInt64, size: UInt64) throws {
        for e in entries where base < e.base + e.size && e.base < base + size {
            throw InsertError.overlap(bus: name, base: base, size: size)
        }
        entries.append(Entry(base: base, size: size, device: device))
        entries.sort { $0.base < $1.base }
    }

    /// The device covering `address`, with the offset into it.
    public func device(at address: UInt64) -> (device: any BusDevice, offset: UInt64)? {
        for e in entries where address >= e.base && address - e.base < e.size {
            return (e.device, address - e.base)
        }
        return nil
    }
}

/// Counters the VMM reports per boot (VM exits by reason, handled quirks).
public final class ExitStatistics: Sendable {
    private let counts = Mutex<[String: Int]>([:])
    public init() {}
    public func count(_ reason: String, by n: Int = 1) {
        counts.withLock { $0[reason, default: 0] += n }
    }
    public var snapshot: [String: Int] { counts.withLock { $0 } }
}
