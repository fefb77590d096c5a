import Testing
import Synchronization
@testable import VMM

/// virtio-balloon with free page reporting, driven as the Linux driver does (no guest):
/// feature negotiation, a report whose ranges go back to the host, and hostile chains
/// refused and counted without stopping anything.
@Suite struct VirtioBalloonTests {
    let memory: GuestMemory
    let recorder = Recorder()
    let balloon: VirtioBalloon
    let transport: VirtioMMIOTransport

    static let ramSize: UInt64 = 4 << 20
    static let negotiated = VirtioFeature.version1 | VirtioBalloon.featureReporting

    init() throws {
        memory = try GuestMemory(size: Self.ramSize)
        let recorder = self.recorder
        balloon = VirtioBalloon { message in recorder.logs.withLock { $0.append(message) } }
        transport = VirtioMMIOTransport(
            name: "test-balloon", device: balloon, base: GuestAddress(0xd000_0000), irq: 5, memory: memory,
            interrupt: { recorder.interrupts.add(1, ordering: .relaxed) },
            log: { message in recorder.logs.withLock { $0.append(message) } })
    }

    func w(_ offset: UInt64, _ value: UInt64) { transport.write(offset: offset, length: 4, value: value) }
    func r(_ offset: UInt64) -> UInt64 { transport.read(offset: offset, length: 4) }
    /// inflateq, deflateq, reporting_vq: rings apart from each other and from the data pages.
    var inflate: MockDriver { MockDriver(memory: memory, size: 16, descriptors: GuestAddress(0x1000), available: GuestAddress(0x2000), used: GuestAddress(0x3000)) }
    var deflate: MockDriver { MockDriver(memory: memory, size: 16, descriptors: GuestAddress(0x4000), available: GuestAddress(0x5000), used: GuestAddress(0x6000)) }
    var reporting: MockDriver { MockDriver(memory: memory, size: 32, descriptors: GuestAddress(0x7000), available: GuestAddress(0x8000), used: GuestAddress(0x9000)) }
    /// Brings the device up as Linux does and hands back the three drivers.
    func bringUp() -> (inflate: MockDriver, deflate: MockDriver, reporting: MockDriver) {
        transport.bringUpLikeLinux(queues: [inflate, deflate, reporting], features: Self.negotiated)
        return (inflate, deflate, reporting)
    }
    var needsReset: Bool { r(0x70) & 0x40 != 0 }

    /// Fills `count` bytes at `address` with `byte` (the guest's old data in a freed page).
    func fill(_ address: UInt64, _ count: Int, _ byte: UInt8) throws {
        try memory.write(bytes: [UInt8](repeating: byte, count: count), at: GuestAddress(address))
    }
    func bytes(_ address: UInt64, _ count: Int) throws -> Set<UInt8> {
        Set(try memory.readBytes(at: GuestAddress(address), count: count))
    }

    @Test func offersReportingAndVersion1Only() {
        #expect(r(0x008) == 5)
        w(0x14, 0)
        #expect(r(0x010) == 1 << 5)                // REPORTING; no STATS_VQ, DEFLATE_ON_OOM, PAGE_POISON
        w(0x14, 1)
        #expect(r(0x010) == 1)                     // VERSION_1
        // The Linux driver's negotiation is accepted, with three queues.
        _ = bringUp()
        #expect(r(0x70) == 15)
        for (queue, size) in [(0, 16), (1, 16), (2, 32)] {
            w(0x30, UInt64(queue))
            #expect(r(0x34) == UInt64(size))
            #expect(r(0x44) == 1)
        }
        w(0x30, 3)
        #expect(r(0x34) == 0)                      // no stats or free page hint queue
    }

    @Test func refusesFeaturesItDidNotOffer() {
        w(0x70, 1); w(0x70, 3)
        w(0x24, 0); w(0x20, (1 << 5) | (1 << 1))   // REPORTING + STATS_VQ (not offered)
        w(0x24, 1); w(0x20, 1)
        w(0x70, 11)
        #expect(r(0x70) & 8 == 0)
    }

    @Test func configurationSpaceHasNoTargetAndKeepsActual() {
        _ = bringUp()
        #expect(transport.read(offset: 0x100, length: 4) == 0)          // num_pages
        transport.write(offset: 0x104, length: 4, value: 0x1234_5678)   // actual
        #expect(transport.read(offset: 0x104, length: 4) == 0x1234_5678)
        #expect(transport.read(offset: 0x105, length: 1) == 0x56)
        transport.write(offset: 0x100, length: 4, value: 77)            // num_pages is the device's
        transport.write(offset: 0x10c, length: 4, value: 0xaa)          // poison_val: not negotiated
        #expect(transport.read(offset: 0x100, length: 4) == 0)
        #expect(transport.read(offset: 0x10c, length: 4) == 0)
        #expect(transport.read(offset: 0x110, length: 4) == 0)          // past the structure
        w(0x70, 0)                                                      // reset
        #expect(transport.read(offset: 0x104, length: 4) == 0)
    }

    @Test func aReportReleasesItsRangesAndComesBackUsed() throws {
        var reporting = bringUp().reporting
        try fill(0x100000, 0x20000, 0xab)
        try fill(0x300000, 0x10000, 0xcd)
        try fill(0x120000, 0x1000, 0xee)           // just past the first range: kept
        // Linux's report: one device-writable descriptor per free block.
        try reporting.setDescriptor(3, .init(address: 0x100000, length: 0x20000, flags: 3, next: 4))
        try reporting.setDescriptor(4, .init(address: 0x300000, length: 0x10000, flags: 2))
        try reporting.publish(3)
        transport.queueNotified(2)
        #expect(try bytes(0x100000, 0x20000) == [0])
        #expect(try bytes(0x300000, 0x10000) == [0])
        #expect(try bytes(0x120000, 0x1000) == [0xee])
        #expect(try reporting.usedIndex() == 1)
        #expect(try reporting.usedElement(0) == (3, 0))
        #expect(r(0x60) & 1 == 1)
        #expect(recorder.interrupts.load(ordering: .relaxed) == 1)
        #expect(balloon.statistics.reports == 1)
        #expect(balloon.statistics.releasedBytes == 0x30000)
        #expect(balloon.statistics.refusedChains == 0)
        #expect(!needsReset)
    }

    /// Every kind of bad report is returned unused and counted; nothing is released,
    /// not even the good ranges of a chain with one bad range, and the device runs on.
    @Test func malformedAndOutOfBoundsReportsAreRefused() throws {
        var reporting = bringUp().reporting
        try fill(0x100000, 0x1000, 0x11)
        let size = Self.ramSize
        let bad: [[MockDriver.Descriptor]] = [
            [.init(address: size - 0x1000, length: 0x2000, flags: 2)],                  // runs past the end of RAM
            [.init(address: size, length: 0x1000, flags: 2)],                           // starts at the end
            [.init(address: 0xffff_ffff_ffff_f000, length: 0x2000, flags: 2)],         // wraps around
            [.init(address: 0x100000, length: 0x1000, flags: 3, next: 1),
             .init(address: size + 0x10_0000, length: 0x1000, flags: 2)],               // one good, one outside
            [.init(address: 0x100800, length: 0x1000, flags: 2)],                       // not page aligned
            [.init(address: 0x100000, length: 0x800, flags: 2)],                        // not whole pages
            [.init(address: 0x100000, length: 0, flags: 2)],                            // empty
            [.init(address: 0x100000, length: 0x1000, flags: 0)],                       // device-readable
        ]
        var expectedUsed: UInt16 = 0
        for (i, chain) in bad.enumerated() {
            let head = UInt16(i * 2)
            for (j, var descriptor) in chain.enumerated() {
                if descriptor.flags & 1 != 0 { descriptor.next = head + UInt16(j) + 1 }
                try reporting.setDescriptor(head + UInt16(j), descriptor)
            }
            try reporting.publish(head)
            transport.queueNotified(2)
            expectedUsed += 1
            #expect(try reporting.usedIndex() == expectedUsed, "chain \(i)")
            #expect(try reporting.usedElement(expectedUsed - 1) == (UInt32(head), 0), "chain \(i)")
            #expect(!needsReset, "chain \(i) stopped the device")
        }
        #expect(try bytes(0x100000, 0x1000) == [0x11])
        #expect(balloon.statistics.refusedChains == UInt64(bad.count))
        #expect(balloon.statistics.releasedBytes == 0)
        #expect(balloon.statistics.reports == 0)
        #expect(recorder.logs.withLock { $0 }.contains { $0.contains("outside guest RAM") })
        #expect(recorder.logs.withLock { $0 }.contains { $0.contains("aligned") })
        // A good report still works afterwards.
        try reporting.setDescriptor(30, .init(address: 0x100000, length: 0x1000, flags: 2))
        try reporting.publish(30)
        transport.queueNotified(2)
        #expect(try bytes(0x100000, 0x1000) == [0])
        #expect(balloon.statistics.releasedBytes == 0x1000)
    }

    /// Broken descriptors (a loop, an index past the queue) are not a request at all:
    /// the device stops (DEVICE_NEEDS_RESET) as every virtio device does, the VMM runs on.
    @Test func aBrokenChainStopsOnlyTheDevice() throws {
        var reporting = bringUp().reporting
        try reporting.setDescriptor(0, .init(address: 0x100000, length: 0x1000, flags: 3, next: 0))  // loops
        try reporting.publish(0)
        transport.queueNotified(2)
        #expect(needsReset)
        #expect(balloon.statistics.releasedBytes == 0)
        w(0x70, 0)
        #expect(r(0x70) == 0)
    }

    @Test func inflateAndDeflateAreCheckedAndAcknowledged() throws {
        var (inflate, deflate, _) = bringUp()
        // Two PFNs inside RAM, then one past it.
        try memory.write(UInt32(0x100), at: GuestAddress(0x50000))
        try memory.write(UInt32(0x3ff), at: GuestAddress(0x50004))
        try memory.write(UInt32(0x400), at: GuestAddress(0x50010))
        try fill(0x100000, 0x1000, 0x22)
        try inflate.setDescriptor(0, .init(address: 0x50000, length: 8))
        try inflate.publish(0)
        try inflate.setDescriptor(1, .init(address: 0x50010, length: 4))
        try inflate.publish(1)
        try inflate.setDescriptor(2, .init(address: 0x50000, length: 6))             // not whole PFNs
        try inflate.publish(2)
        transport.queueNotified(0)
        #expect(try inflate.usedIndex() == 3)
        try deflate.setDescriptor(0, .init(address: 0x50000, length: 8))
        try deflate.publish(0)
        try deflate.setDescriptor(1, .init(address: Self.ramSize - 2, length: 8))    // outside RAM
        try deflate.publish(1)
        transport.queueNotified(1)
        #expect(try deflate.usedIndex() == 2)
        let s = balloon.statistics
        #expect(s.inflateChains == 1 && s.deflateChains == 1 && s.refusedChains == 3, "\(s)")
        #expect(try bytes(0x100000, 0x1000) == [0x22])                                // acknowledged, not released
        #expect(!needsReset)
    }

    @Test func snapshotStateRoundTrips() throws {
        var reporting = bringUp().reporting
        transport.write(offset: 0x104, length: 4, value: 9)
        try reporting.setDescriptor(0, .init(address: 0x200000, length: 0x2000, flags: 2))
        try reporting.publish(0)
        try reporting.setDescriptor(1, .init(address: 0x200001, length: 0x2000, flags: 2))
        try reporting.publish(1)
        let saved = try transport.captureState()       // serves the queues first
        #expect(saved.deviceType == 5)
        #expect(saved.transport.queues.map(\.nextAvailable) == [0, 0, 2])

        let restoredMemory = try GuestMemory(size: Self.ramSize)
        let restored = VirtioBalloon()
        let other = VirtioMMIOTransport(name: "test-balloon", device: restored, base: GuestAddress(0xd000_0000), irq: 5,
                                        memory: restoredMemory, interrupt: {}, log: { _ in })
        try other.restoreState(saved)
        #expect(other.read(offset: 0x104, length: 4) == 9)
        #expect(restored.statistics == balloon.statistics)
        #expect(restored.statistics.reports == 1 && restored.statistics.refusedChains == 1)
        #expect(other.read(offset: 0x70, length: 4) == 15)

        var queues = VirtioQueues(queues: [], memory: restoredMemory)
        #expect(throws: SnapshotError.self) { try VirtioBalloon().restoreState(saved.device + [0], queues: &queues) }
        #expect(throws: SnapshotError.self) { try VirtioBalloon().restoreState(Array(saved.device.prefix(5)), queues: &queues) }
    }
}
