import Testing
@testable import VMM

@Suite struct VirtqueueTests {
    let memory: GuestMemory
    init() throws { memory = try GuestMemory(size: 1 << 20) }

    @Test func popsAChainAndReturnsIt() throws {
        var driver = MockDriver(memory: memory)
        try driver.setDescriptor(0, .init(address: 0x8000, length: 16, flags: 1, next: 3))
        try driver.setDescriptor(3, .init(address: 0x9000, length: 32, flags: 2))
        try driver.publish(0)
        var q = driver.queue()
        #expect(q.validate(in: memory) == nil)
        let chain = try #require(try q.pop(memory))
        #expect(chain.readable == [.init(address: GuestAddress(0x8000), length: 16)])
        #expect(chain.writable == [.init(address: GuestAddress(0x9000), length: 32)])
        #expect(try q.pop(memory) == nil)
        try q.pushUsed(head: chain.head, length: 5, memory)
        #expect(try driver.usedIndex() == 1)
        #expect(try driver.usedElement(0) == (0, 5))
    }

    @Test func aDescriptorLoopIsAnErrorNotAHang() throws {
        var driver = MockDriver(memory: memory)
        try driver.setDescriptor(0, .init(address: 0x8000, length: 1, flags: 1, next: 1))
        try driver.setDescriptor(1, .init(address: 0x8000, length: 1, flags: 1, next: 0))
        try driver.publish(0)
        var q = driver.queue()
        #expect(throws: Virtqueue.QueueError.chainTooLong(head: 0, limit: 8)) { try q.pop(memory) }
    }

    @Test func rejectsHostileDescriptors() throws {
        var driver = MockDriver(memory: memory)
        // next index beyond the queue
        try driver.setDescriptor(0, .init(address: 0x8000, length: 1, flags: 1, next: 200))
        // buffer running past guest RAM
        try driver.setDescriptor(1, .init(address: (1 << 20) - 8, length: 64))
        // indirect table we never offered
        try driver.setDescriptor(2, .init(address: 0x8000, length: 16, flags: 4))
        // readable after writable
        try driver.setDescriptor(4, .init(address: 0x8000, length: 1, flags: 3, next: 5))
        try driver.setDescriptor(5, .init(address: 0x8000, length: 1, flags: 0))
        // head index itself out of range
        for head: UInt16 in [0, 1, 2, 4, 9] { try driver.publish(head) }
        var q = driver.queue()
        #expect(throws: Virtqueue.QueueError.descriptorIndex(200, size: 8)) { try q.pop(memory) }
        #expect(throws: Virtqueue.QueueError.memory(.outOfBounds(address: GuestAddress((1 << 20) - 8), length: 64))) { try q.pop(memory) }
        #expect(throws: Virtqueue.QueueError.indirectNotNegotiated(head: 2)) { try q.pop(memory) }
        #expect(throws: Virtqueue.QueueError.readableAfterWritable(head: 4)) { try q.pop(memory) }
        #expect(throws: Virtqueue.QueueError.descriptorIndex(9, size: 8)) { try q.pop(memory) }
    }

    @Test func anAvailableIndexJumpingPastTheQueueIsAnError() throws {
        let driver = MockDriver(memory: memory)
        try memory.write(UInt16(100), at: driver.available + 2)
        var q = driver.queue()
        #expect(throws: Virtqueue.QueueError.availableIndexJump(from: 0, to: 100, size: 8)) { try q.pop(memory) }
    }

    @Test(arguments: [
        (UInt16(6), "queue size 6 (max 8, power of two)"),
        (UInt16(16), "queue size 16 (max 8, power of two)"),
    ])
    func validatesQueueSize(size: UInt16, message: String) throws {
        var q = MockDriver(memory: memory).queue()
        q.size = size
        #expect(q.validate(in: memory) == message)
    }

    @Test func validatesRingPlacement() throws {
        var q = MockDriver(memory: memory).queue()
        q.usedRing = GuestAddress((1 << 20) - 16)
        #expect(q.validate(in: memory)?.contains("used ring") == true)
        q = MockDriver(memory: memory).queue()
        q.descriptorTable = GuestAddress(0x1008)
        #expect(q.validate(in: memory) == "descriptor table at 0x1008 is not 16-byte aligned")
    }

    /// Found by fuzz/targets/virtqueue: a zero-length readable buffer ended `readAll`,
    /// dropping the buffers after it (a FUSE request then looked shorter than it was).
    @Test func readAllSkipsAZeroLengthBufferAndReadsTheRest() throws {
        var driver = MockDriver(memory: memory)
        try memory.write(bytes: [1, 2, 3], at: GuestAddress(0x8000))
        try memory.write(bytes: [4, 5], at: GuestAddress(0x9000))
        try driver.setDescriptor(0, .init(address: 0x8000, length: 0, flags: 1, next: 1))
        try driver.setDescriptor(1, .init(address: 0x8000, length: 3, flags: 1, next: 2))
        try driver.setDescriptor(2, .init(address: 0x9000, length: 2))
        try driver.publish(0)
        var q = driver.queue()
        let chain = try #require(try q.pop(memory))
        #expect(chain.readableLength == 5)
        #expect(try chain.readAll(memory, limit: 100) == [1, 2, 3, 4, 5])
        #expect(try chain.readAll(memory, limit: 4) == [1, 2, 3, 4])
        #expect(try chain.readAll(memory, limit: 0) == [])
    }
}
