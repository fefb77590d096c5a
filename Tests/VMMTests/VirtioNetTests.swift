import Testing
import Synchronization
#if canImport(Glibc)
import Glibc
#endif
@testable import VMM

/// virtio-net driven as the Linux driver does (no guest), with a SOCK_SEQPACKET pair
/// standing in for the tap (one read or write per frame, as a tap): frames both ways
/// with their 12-byte header, and hostile chains dropped and counted without
/// stopping the device.
@Suite struct VirtioNetTests {
    let memory: GuestMemory
    let recorder = Recorder()
    let device: VirtioNet
    let transport: VirtioMMIOTransport
    /// The test's end of the "tap".
    let peer: OwnedDescriptor

    init(tap: Bool = true) throws {
        memory = try GuestMemory(size: 4 << 20)
        var fds: [Int32] = [-1, -1]
        #expect(socketpair(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) == 0)
        let deviceEnd = OwnedDescriptor(adopting: fds[0])
        peer = OwnedDescriptor(adopting: fds[1])
        let loop = try EventLoop()
        if tap { try loop.add(deviceEnd, armed: false) {} }
        let recorder = self.recorder
        device = VirtioNet(tap: tap ? deviceEnd : nil, loop: loop) { message in recorder.logs.withLock { $0.append(message) } }
        transport = VirtioMMIOTransport(
            name: "test-net", device: device, base: GuestAddress(0xd000_0000), irq: 5, memory: memory,
            interrupt: { recorder.interrupts.add(1, ordering: .relaxed) },
            log: { message in recorder.logs.withLock { $0.append(message) } })
    }

    var receive: MockDriver { MockDriver(memory: memory, size: 8, descriptors: GuestAddress(0x1000), available: GuestAddress(0x2000), used: GuestAddress(0x3000)) }
    var transmit: MockDriver { MockDriver(memory: memory, size: 8, descriptors: GuestAddress(0x4000), available: GuestAddress(0x5000), used: GuestAddress(0x6000)) }
    var needsReset: Bool { transport.read(offset: 0x70, length: 4) & 0x40 != 0 }

    static let frame: [UInt8] = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 1, 0x08, 0x06] + Array(repeating: 0x5a, count: 46)
    /// virtio_net_hdr_v1 as the tap gives it (IFF_VNET_HDR): no flags, GSO_NONE; bytes 10-11 (num_buffers) untouched.
    static let tapHeader: [UInt8] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xee, 0xee]

    @Test func offersOffloadsAndNoIdentity() {
        #expect(transport.read(offset: 0x008, length: 4) == 1)       // device ID: network
        transport.write(offset: 0x14, length: 4, value: 0)
        // CSUM, GUEST_CSUM, GUEST_TSO4/6, HOST_TSO4/6; no MAC, no status, no MRG_RXBUF, no control queue.
        #expect(transport.read(offset: 0x010, length: 4) == 0b1_1001_1000_0011)
        transport.write(offset: 0x14, length: 4, value: 1)
        #expect(transport.read(offset: 0x010, length: 4) == 1)       // VERSION_1
        #expect(transport.read(offset: 0x100, length: 4) == 0)       // no MAC in the config space
    }

    @Test func aGuestFrameReachesTheTapWithItsHeader() throws {
        var tx = transmit
        transport.bringUpLikeLinux(queues: [receive, tx])
        try memory.write(bytes: [UInt8](repeating: 0, count: 12) + Self.frame, at: GuestAddress(0x10000))
        try tx.setDescriptor(0, .init(address: 0x10000, length: UInt32(12 + Self.frame.count)))
        try tx.publish(0)
        transport.queueNotified(1)
        var buffer = [UInt8](repeating: 0, count: 2048)
        let n = read(peer.rawValue, &buffer, buffer.count)
        #expect(n == 12 + Self.frame.count && Array(buffer[0..<max(0, n)]) == [UInt8](repeating: 0, count: 12) + Self.frame)
        #expect(try tx.usedIndex() == 1)
        #expect(device.statistics.transmittedFrames == 1 && device.statistics.transmittedBytes == Self.frame.count)
    }

    @Test func aTapFrameFillsAReceiveBufferWithAHeader() throws {
        var rx = receive
        transport.bringUpLikeLinux(queues: [rx, transmit])
        try rx.setDescriptor(0, .init(address: 0x20000, length: 1526, flags: 2))
        try rx.publish(0)
        transport.queueNotified(0)
        let packet = Self.tapHeader + Self.frame
        #expect(write(peer.rawValue, packet, packet.count) == packet.count)
        transport.withDevice(VirtioNet.self) { device, queues throws(Virtqueue.QueueError) in try device.tapReadable(&queues) }
        #expect(try rx.usedIndex() == 1)
        #expect(try rx.usedElement(0).length == UInt32(12 + Self.frame.count))
        let header = try memory.readBytes(at: GuestAddress(0x20000), count: 12)
        #expect(header == [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0])      // GSO_NONE, num_buffers 1
        #expect(try memory.readBytes(at: GuestAddress(0x20000 + 12), count: Self.frame.count) == Self.frame)
        #expect(device.statistics.receivedFrames == 1)
        // No buffer left: the next frame waits in the tap.
        #expect(write(peer.rawValue, packet, packet.count) == packet.count)
        transport.withDevice(VirtioNet.self) { device, queues throws(Virtqueue.QueueError) in try device.tapReadable(&queues) }
        #expect(try rx.usedIndex() == 1 && device.statistics.receivedFrames == 1)
    }

    @Test func hostileChainsAreDroppedAndCountedNotFatal() throws {
        var tx = transmit, rx = receive
        transport.bringUpLikeLinux(queues: [rx, tx])
        // Shorter than the header; then longer than any frame (the length alone says so).
        try tx.setDescriptor(0, .init(address: 0x10000, length: 8))
        try tx.setDescriptor(1, .init(address: 0x10000, length: 0x20000))
        try tx.publish(0)
        try tx.publish(1)
        transport.queueNotified(1)
        #expect(try tx.usedIndex() == 2)
        #expect(device.statistics.transmitDropped == 2 && device.statistics.transmittedFrames == 0)
        // A runt from the tap (no frame after the header): dropped, its buffer kept;
        // then a receive buffer too small for the frame: cut, counted.
        try rx.setDescriptor(0, .init(address: 0x20000, length: 20, flags: 2))
        try rx.publish(0)
        #expect(write(peer.rawValue, Self.tapHeader, 12) == 12)
        let packet = Self.tapHeader + Self.frame
        #expect(write(peer.rawValue, packet, packet.count) == packet.count)
        transport.withDevice(VirtioNet.self) { device, queues throws(Virtqueue.QueueError) in try device.tapReadable(&queues) }
        #expect(try rx.usedIndex() == 1)
        #expect(try rx.usedElement(0).length == 20)
        #expect(device.statistics.receiveErrors == 2)
        #expect(!needsReset)
    }

    @Test func withoutATapFramesAreDropped() throws {
        let test = try VirtioNetTests(tap: false)
        var tx = test.transmit
        test.transport.bringUpLikeLinux(queues: [test.receive, tx])
        try test.memory.write(bytes: [UInt8](repeating: 0, count: 12) + Self.frame, at: GuestAddress(0x10000))
        try tx.setDescriptor(0, .init(address: 0x10000, length: UInt32(12 + Self.frame.count)))
        try tx.publish(0)
        test.transport.queueNotified(1)
        #expect(try tx.usedIndex() == 1)
        #expect(test.device.statistics.transmitDropped == 1)
        #expect(!test.needsReset)
    }
}
