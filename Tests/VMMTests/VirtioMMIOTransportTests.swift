import Testing
import Synchronization
@testable import VMM

/// Drives the virtio-mmio register block as the Linux driver does, with a console behind it.
@Suite struct VirtioMMIOTransportTests {
    let memory: GuestMemory
    let recorder = Recorder()
    let console: VirtioConsole
    let transport: VirtioMMIOTransport

    init() throws {
        memory = try GuestMemory(size: 1 << 20)
        let recorder = self.recorder
        console = VirtioConsole { bytes in recorder.output.withLock { $0 += bytes } }
        transport = VirtioMMIOTransport(
            name: "test-console", device: console, base: GuestAddress(0xd000_0000), irq: 5, memory: memory,
            interrupt: { recorder.interrupts.add(1, ordering: .relaxed) },
            log: { message in recorder.logs.withLock { $0.append(message) } })
    }

    func w(_ offset: UInt64, _ value: UInt64) { transport.write(offset: offset, length: 4, value: value) }
    func r(_ offset: UInt64) -> UInt64 { transport.read(offset: offset, length: 4) }

    func bringUp(queues: [MockDriver]) { transport.bringUpLikeLinux(queues: queues) }

    @Test func identifiesAsAVersion2ConsoleDevice() {
        #expect(r(0x000) == 0x7472_6976)
        #expect(r(0x004) == 2)
        #expect(r(0x008) == 3)
        w(0x14, 1)
        #expect(r(0x010) & 1 == 1)          // VERSION_1 is bit 32
        #expect(transport.kernelParameter == "virtio_mmio.device=4K@0xd0000000:5")
    }

    @Test func refusesFeaturesItDidNotOffer() {
        w(0x70, 3)
        w(0x24, 1); w(0x20, 1 | (1 << 5))   // VERSION_1 plus an unoffered bit
        w(0x70, 11)
        #expect(r(0x70) & 8 == 0)
    }

    @Test func guestOutputReachesTheHost() throws {
        let rx = MockDriver(memory: memory, size: 8)
        // The transmit queue's rings sit apart from the receive queue's.
        let txDriver = ShiftedDriver(base: MockDriver(memory: memory, size: 8), shift: 0x10000)
        bringUp(queues: [rx, txDriver.driver])
        try memory.write(bytes: Array("hello\n".utf8), at: GuestAddress(0x40000))
        try txDriver.driver.setDescriptor(0, .init(address: 0x40000, length: 6))
        var d = txDriver.driver
        try d.publish(0)
        transport.queueNotified(1)
        #expect(recorder.output.withLock { $0 } == Array("hello\n".utf8))
        #expect(try d.usedIndex() == 1)
        #expect(r(0x60) & 1 == 1)
        #expect(recorder.interrupts.load(ordering: .relaxed) == 1)
        #expect(console.tail == Array("hello\n".utf8))
    }

    @Test func hostInputFillsReceiveBuffers() throws {
        var rx = MockDriver(memory: memory, size: 8)
        let tx = ShiftedDriver(base: MockDriver(memory: memory, size: 8), shift: 0x10000).driver
        bringUp(queues: [rx, tx])
        try rx.setDescriptor(0, .init(address: 0x50000, length: 4, flags: 2))
        try rx.publish(0)
        transport.withDevice(VirtioConsole.self) { console, queues throws(Virtqueue.QueueError) in
            try console.enqueueInput(Array("abcdef".utf8), queues: &queues)
        }
        #expect(try memory.readBytes(at: GuestAddress(0x50000), count: 4) == Array("abcd".utf8))
        #expect(try rx.usedElement(0) == (0, 4))
        // The rest waits for the next buffer.
        try rx.setDescriptor(1, .init(address: 0x50010, length: 8, flags: 2))
        try rx.publish(1)
        transport.queueNotified(0)
        #expect(try memory.readBytes(at: GuestAddress(0x50010), count: 2) == Array("ef".utf8))
        #expect(try rx.usedElement(1) == (1, 2))
    }

    @Test func aHostileChainStopsTheDeviceNotTheVMM() throws {
        let rx = MockDriver(memory: memory, size: 8)
        var tx = ShiftedDriver(base: MockDriver(memory: memory, size: 8), shift: 0x10000).driver
        bringUp(queues: [rx, tx])
        try tx.setDescriptor(0, .init(address: 0x40000, length: 1, flags: 1, next: 0))   // loops on itself
        try tx.publish(0)
        transport.queueNotified(1)
        #expect(r(0x70) & 0x40 != 0)             // DEVICE_NEEDS_RESET
        #expect(recorder.logs.withLock { $0 }.contains { $0.contains("exceeds 8 descriptors") })
        // Further notifications are ignored until the driver resets the device.
        transport.queueNotified(1)
        w(0x70, 0)
        #expect(r(0x70) == 0)
    }

    @Test func aQueueOutsideGuestRAMIsRefused() {
        w(0x70, 3); w(0x24, 1); w(0x20, 1); w(0x70, 11)
        w(0x30, 0); w(0x38, 8)
        w(0x80, 0); w(0x84, 0x10)                // descriptor table far beyond 1 MiB of RAM
        w(0x44, 1)
        #expect(r(0x44) == 0)
        #expect(r(0x70) & 0x40 != 0)
    }
}

/// A mock driver whose rings sit `shift` bytes higher, so two queues do not overlap.
struct ShiftedDriver {
    var driver: MockDriver
    init(base: MockDriver, shift: UInt64) {
        driver = MockDriver(memory: base.memory, size: base.size, descriptors: base.descriptors + shift,
                            available: base.available + shift, used: base.used + shift)
    }
}

/// What the device under test reported, shared with its callbacks.
final class Recorder: Sendable {
    let output = Mutex<[UInt8]>([])
    let interrupts = Atomic<Int>(0)
    let logs = Mutex<[String]>([])
}
