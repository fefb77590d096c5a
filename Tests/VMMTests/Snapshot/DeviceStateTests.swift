import Testing
import Synchronization
@testable import VMM

/// Transport and virtqueue state through a snapshot: a console that has carried
/// output is captured, encoded, decoded and restored into a fresh transport over the
/// same RAM, which carries on from the same ring positions.
@Suite struct DeviceStateTests {
    final class Sink: Sendable { let bytes = Mutex<[UInt8]>([]) }

    static func transport(_ memory: GuestMemory, _ sink: Sink) -> VirtioMMIOTransport {
        VirtioMMIOTransport(name: "virtio-console", device: VirtioConsole { b in sink.bytes.withLock { $0 += b } },
                            base: GuestAddress(0xd000_0000), irq: 5, memory: memory, interrupt: {}, log: { _ in })
    }

    static func roundTrip(_ state: DeviceSnapshot) throws -> DeviceSnapshot {
        var writer = SnapshotWriter()
        DeviceStates(devices: [state]).encode(into: &writer)
        var reader = SnapshotReader(writer.bytes, what: "devices")
        let decoded = try DeviceStates.decode(from: &reader)
        try reader.finish()
        return try #require(decoded.devices.first)
    }

    @Test func aRestoredTransportCarriesOnFromTheSavedRingPositions() throws {
        let memory = try GuestMemory(size: 1 << 20)
        let first = Sink()
        let saved = Self.transport(memory, first)
        let rx = MockDriver(memory: memory, size: 8)
        var tx = ShiftedDriver(base: MockDriver(memory: memory, size: 8), shift: 0x10000).driver
        saved.bringUpLikeLinux(queues: [rx, tx])
        try memory.write(bytes: Array("one\n".utf8), at: GuestAddress(0x40000))
        try tx.setDescriptor(0, .init(address: 0x40000, length: 4))
        try tx.publish(0)
        saved.queueNotified(1)
        #expect(first.bytes.withLock { $0 } == Array("one\n".utf8))

        let state = try Self.roundTrip(try saved.captureState())
        #expect(state.transport.queues[1].nextAvailable == 1 && state.transport.queues[1].nextUsed == 1)
        let second = Sink()
        let restored = Self.transport(memory, second)
        try restored.restoreState(state)
        #expect(restored.read(offset: 0x70, length: 4) == saved.read(offset: 0x70, length: 4))
        try memory.write(bytes: Array("two\n".utf8), at: GuestAddress(0x40100))
        try tx.setDescriptor(1, .init(address: 0x40100, length: 4))
        try tx.publish(1)
        restored.queueNotified(1)
        #expect(second.bytes.withLock { $0 } == Array("two\n".utf8))   // not "one" again
        #expect(try tx.usedIndex() == 2)
    }

    @Test func aQueueOutsideGuestRAMOrAnotherDeviceIsRefused() throws {
        let memory = try GuestMemory(size: 1 << 20)
        let sink = Sink()
        let saved = Self.transport(memory, sink)
        saved.bringUpLikeLinux(queues: [MockDriver(memory: memory, size: 8),
                                        ShiftedDriver(base: MockDriver(memory: memory, size: 8), shift: 0x10000).driver])
        var state = try saved.captureState()
        state.transport.queues[0].usedRing = 1 << 30
        #expect(throws: SnapshotError.self) { try Self.transport(memory, sink).restoreState(state) }
        var other = try saved.captureState()
        other.name = "virtio-vsock"
        #expect(throws: SnapshotError.self) { try Self.transport(memory, sink).restoreState(other) }
    }
}
