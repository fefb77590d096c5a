// Split virtqueue descriptor chains (Sources/VMM/Devices/Virtio/Virtqueue.swift)
// over a 64 KiB guest RAM filled from the input. Header (12 bytes): queue size
// (log2), flags (bit 0: the device leaves buffer bounds to itself), descriptor
// table / available ring / used ring addresses, the ring positions to start from;
// then the RAM image. A queue the transport would refuse (`validate`) is not popped.
// Every chain popped is read, written and returned as a device would. Oracles:
// chains are at most `size` descriptors, buffers inside RAM when checked, and
// reads/writes stay within the chain's buffers.
#if canImport(Glibc)
import Glibc
#endif
@testable import VMM

let ramSize: UInt64 = 64 << 10
let memory: GuestMemory = {
    do { return try GuestMemory(size: ramSize) } catch { fuzzFailure("guest memory: \(error)") }
}()

@_cdecl("LLVMFuzzerInitialize")
public func fuzzInitialize(_ argc: UnsafeMutableRawPointer?, _ argv: UnsafeMutableRawPointer?) -> CInt {
    writeSeedsIfAsked(virtqueueSeeds)
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var input = FuzzInput(data, size)
    let sizeLog = input.u8() % 9
    let flags = input.u8()
    var queue = Virtqueue(maxSize: 256)
    queue.size = UInt16(1) << UInt16(sizeLog)
    queue.descriptorTable = GuestAddress(UInt64(input.u16()))
    queue.availableRing = GuestAddress(UInt64(input.u16()))
    queue.usedRing = GuestAddress(UInt64(input.u16()))
    let nextAvailable = input.u16(), nextUsed = input.u16()
    let image = input.take(Int(ramSize))
    do {
        try memory.zero(at: GuestAddress(0), count: Int(ramSize))
        try memory.write(bytes: image, at: GuestAddress(0))
    } catch { fuzzFailure("fill RAM: \(error)") }
    guard queue.validate(in: memory) == nil else { return 0 }
    queue.ready = true
    queue.restorePositions(nextAvailable: nextAvailable, nextUsed: nextUsed)
    let checking = flags & 1 == 0
    for _ in 0..<(2 * Int(queue.size) + 1) {
        let chain: Virtqueue.Chain
        do {
            guard let popped = try queue.pop(memory, checkingBuffers: checking) else { break }
            chain = popped
        } catch {
            _ = error.description
            break
        }
        let descriptors = chain.readable.count + chain.writable.count
        guard descriptors >= 1, descriptors <= Int(queue.size), chain.head < queue.size else {
            fuzzFailure("chain from \(chain.head) of \(descriptors) descriptors in a queue of \(queue.size)")
        }
        guard checking else {
            try? queue.pushUsed(head: chain.head, length: 0, memory)
            continue
        }
        for buffer in chain.readable + chain.writable where !memory.contains(buffer.address, length: Int(buffer.length)) {
            fuzzFailure("buffer \(buffer) outside RAM")
        }
        let limit = Int(flags >> 1) * 64
        let bytes: [UInt8]
        do { bytes = try chain.readAll(memory, limit: limit) } catch { fuzzFailure("readAll of a checked chain: \(error)") }
        guard bytes.count == min(limit, chain.readableLength) else {
            fuzzFailure("read \(bytes.count) bytes of \(chain.readableLength) with limit \(limit)")
        }
        let written: Int
        do { written = try chain.writeAll(bytes[...], memory) } catch { fuzzFailure("writeAll of a checked chain: \(error)") }
        guard written == min(bytes.count, chain.writableLength) else {
            fuzzFailure("wrote \(written) of \(bytes.count) bytes into \(chain.writableLength)")
        }
        do { try queue.pushUsed(head: chain.head, length: UInt32(written), memory) } catch {
            fuzzFailure("pushUsed into a validated ring: \(error)")
        }
    }
    _ = queue.wantsInterrupt(memory)
    queue.setNotifications(enabled: flags & 2 == 0, memory)
    return 0
}

/// Queues of 8 as the Linux driver lays them out: descriptors at 0, available ring
/// at 0x80, used ring at 0x100, buffers from 0x200.
func virtqueueSeeds() -> [(name: String, bytes: [UInt8])] {
    struct Descriptor { var address: UInt64; var length: UInt32; var flags: UInt16 = 0; var next: UInt16 = 0 }
    func seed(_ descriptors: [UInt16: Descriptor], heads: [UInt16], flags: UInt8 = 0xfe) -> [UInt8] {
        var image = [UInt8](repeating: 0, count: 0x300)
        func put<T: FixedWidthInteger>(_ v: T, _ at: Int) {
            withUnsafeBytes(of: v.littleEndian) { for (i, b) in $0.enumerated() { image[at + i] = b } }
        }
        for (i, d) in descriptors {
            let at = Int(i) * 16
            put(d.address, at); put(d.length, at + 8); put(d.flags, at + 12); put(d.next, at + 14)
        }
        for (i, head) in heads.enumerated() { put(head, 0x80 + 4 + 2 * (i % 8)) }
        put(UInt16(heads.count), 0x80 + 2)
        for i in 0..<0x100 { image[0x200 + i] = UInt8(truncatingIfNeeded: i) }
        var header = LE()
        header.u8(3); header.u8(flags); header.u16(0); header.u16(0x80); header.u16(0x100); header.u16(0); header.u16(0)
        return header.bytes + image
    }
    return [
        ("read-write", seed([0: .init(address: 0x200, length: 16, flags: 1, next: 3), 3: .init(address: 0x280, length: 32, flags: 2)], heads: [0])),
        ("three", seed([0: .init(address: 0x200, length: 8), 1: .init(address: 0x210, length: 8, flags: 1, next: 2),
                        2: .init(address: 0x220, length: 8, flags: 2), 4: .init(address: 0x230, length: 64, flags: 3, next: 5),
                        5: .init(address: 0x270, length: 8, flags: 2)], heads: [0, 1, 4])),
        ("loop", seed([0: .init(address: 0x200, length: 1, flags: 1, next: 1), 1: .init(address: 0x200, length: 1, flags: 1, next: 0)], heads: [0])),
        ("hostile", seed([0: .init(address: 0x200, length: 1, flags: 1, next: 200), 1: .init(address: 0xfff8, length: 64),
                          2: .init(address: 0x200, length: 16, flags: 4)], heads: [0, 1, 2, 9])),
        ("unchecked", seed([0: .init(address: 0xffff_0000_0000, length: 0xffff_ffff)], heads: [0], flags: 1)),
        ("full-ring", seed([0: .init(address: 0x200, length: 4)], heads: [0, 0, 0, 0, 0, 0, 0, 0])),
    ]
}
