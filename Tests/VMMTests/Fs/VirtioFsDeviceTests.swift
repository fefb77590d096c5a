import Testing
#if canImport(Glibc)
import Glibc
#endif
@testable import VMM

extension FuseTests {
    /// The virtio-fs device: identity, config space, and FUSE requests carried in
    /// descriptor chains a mock driver writes into guest memory.
    @Suite struct VirtioFsDeviceTests {
        let share: FuseTestShare
        let memory: GuestMemory
        let device: VirtioFs

        init() throws {
            share = try FuseTestShare(initialize: false)
            memory = try GuestMemory(size: 1 << 20)
            device = try VirtioFs(tag: "rootfs", server: share.server)
        }

        /// Queues 0 (hiprio) and 1 (requests), their rings apart.
        func drivers() -> (hiprio: MockDriver, request: MockDriver) {
            (MockDriver(memory: memory, size: 8),
             ShiftedDriver(base: MockDriver(memory: memory, size: 8), shift: 0x10000).driver)
        }

        func queues(_ d: (hiprio: MockDriver, request: MockDriver)) -> VirtioQueues {
            VirtioQueues(queues: [d.hiprio.queue(), d.request.queue()], memory: memory)
        }

        /// Puts `request` at 0x40000 (readable) and a `room`-byte writable buffer at
        /// 0x50000 into descriptors `first`, `first + 1`, and publishes it.
        func submit(_ request: [UInt8], room: UInt32, on driver: inout MockDriver, first: UInt16 = 0,
                    at address: UInt64 = 0x40000, reply: UInt64 = 0x50000) throws {
            try memory.write(bytes: request, at: GuestAddress(address))
            if room > 0 {
                try driver.setDescriptor(first, .init(address: address, length: UInt32(request.count), flags: 1, next: first + 1))
                try driver.setDescriptor(first + 1, .init(address: reply, length: room, flags: 2))
            } else {
                try driver.setDescriptor(first, .init(address: address, length: UInt32(request.count)))
            }
            try driver.publish(first)
        }

        @Test func identifiesAsAVirtioFsDeviceWithItsTag() throws {
            #expect(device.deviceType == 26)
            #expect(device.features == VirtioFeature.version1)
            #expect(device.queueSizes == [128, 256])
            var tag: [UInt8] = []
            for offset in 0..<36 { tag.append(UInt8(device.readConfig(offset: offset, length: 1))) }
            #expect(tag == Array("rootfs".utf8) + [UInt8](repeating: 0, count: 30))
            #expect(device.readConfig(offset: 0, length: 4) == 0x746f_6f72)           // "root", little-endian
            #expect(device.readConfig(offset: 36, length: 4) == 1)                    // num_request_queues
            #expect(device.readConfig(offset: 38, length: 4) == 0)                    // past the end
            #expect(device.readConfig(offset: -1, length: 1) == 0)
            #expect(throws: VirtioFs.ConfigurationError.invalidTag("")) { try VirtioFs(tag: "", server: share.server) }
            let long = String(repeating: "t", count: 37)
            #expect(throws: VirtioFs.ConfigurationError.invalidTag(long)) { try VirtioFs(tag: long, server: share.server) }
        }

        @Test func aFuseInitInGuestMemoryGetsAReplyInTheWritableBuffer() throws {
            var d = drivers()
            var q = queues(d)
            try submit(fuseMessage(.initialize, unique: 0xabcd, initArgs()), room: 80, on: &d.request)
            try device.process(queue: 1, queues: &q)
            #expect(try d.request.usedIndex() == 1)
            let used = try d.request.usedElement(0)
            #expect(used.id == 0 && used.length == 80)
            let reply = FuseTestReply(try memory.readBytes(at: GuestAddress(0x50000), count: 80))
            #expect(reply.length == 80 && reply.error == 0 && reply.unique == 0xabcd)
            #expect(reply.p32(0) == 7 && reply.p32(4) == 38)
            #expect(q.interruptPending)
            #expect(share.server.session != nil)
        }

        @Test func aReplySpreadsOverSeveralWritableBuffers() throws {
            var d = drivers()
            var q = queues(d)
            try submit(fuseMessage(.initialize, initArgs()), room: 80, on: &d.request)
            try device.process(queue: 1, queues: &q)
            try share.writeHost("f", "0123456789abcdef")
            let node = try share.lookup("f").nodeid
            let fh = try share.open(node, flags: O_RDONLY)
            // Header in one 16-byte buffer, data in two 8-byte buffers.
            let request = fuseMessage(.read, node: node, unique: 9, share.readArgs(fh: fh, size: 16))
            try memory.write(bytes: request, at: GuestAddress(0x40000))
            try d.request.setDescriptor(2, .init(address: 0x40000, length: UInt32(request.count), flags: 1, next: 3))
            try d.request.setDescriptor(3, .init(address: 0x50000, length: 16, flags: 3, next: 4))
            try d.request.setDescriptor(4, .init(address: 0x60000, length: 8, flags: 3, next: 5))
            try d.request.setDescriptor(5, .init(address: 0x70000, length: 8, flags: 2))
            try d.request.publish(2)
            try device.process(queue: 1, queues: &q)
            #expect(try d.request.usedElement(1).length == 32)
            #expect(try memory.readBytes(at: GuestAddress(0x60000), count: 8) == Array("01234567".utf8))
            #expect(try memory.readBytes(at: GuestAddress(0x70000), count: 8) == Array("89abcdef".utf8))
        }

        @Test func aReplyThatDoesNotFitBecomesERANGE() throws {
            var d = drivers()
            var q = queues(d)
            try submit(fuseMessage(.initialize, unique: 5, initArgs()), room: 40, on: &d.request)
            try device.process(queue: 1, queues: &q)
            #expect(try d.request.usedElement(0).length == 16)
            let reply = FuseTestReply(try memory.readBytes(at: GuestAddress(0x50000), count: 16))
            #expect(reply.error == ERANGE && reply.unique == 5 && reply.length == 16)
            // No room even for a header: nothing is written, the chain still completes.
            try submit(fuseMessage(.initialize, unique: 6, initArgs()), room: 8, on: &d.request, first: 2)
            try device.process(queue: 1, queues: &q)
            #expect(try d.request.usedElement(1) == (2, 0))
        }

        @Test func malformedRequestsAreAnsweredAndTheDeviceCarriesOn() throws {
            var d = drivers()
            var q = queues(d)
            // An unreadable header: completed with nothing written.
            try submit([1, 2, 3], room: 64, on: &d.request)
            // A length that lies.
            try submit(fuseMessage(.initialize, unique: 8, length: 999, initArgs()), room: 64, on: &d.request, first: 2,
                       at: 0x41000, reply: 0x51000)
            // Then a good INIT.
            try submit(fuseMessage(.initialize, unique: 9, initArgs()), room: 80, on: &d.request, first: 4,
                       at: 0x42000, reply: 0x52000)
            try device.process(queue: 1, queues: &q)
            #expect(try d.request.usedIndex() == 3)
            #expect(try d.request.usedElement(0) == (0, 0))
            #expect(try d.request.usedElement(1) == (2, 16))
            #expect(FuseTestReply(try memory.readBytes(at: GuestAddress(0x51000), count: 16)).error == EINVAL)
            #expect(try d.request.usedElement(2) == (4, 80))
            #expect(FuseTestReply(try memory.readBytes(at: GuestAddress(0x52000), count: 80)).error == 0)
        }

        @Test func forgetOnTheHiprioQueueCompletesWithNoReply() throws {
            var d = drivers()
            var q = queues(d)
            try submit(fuseMessage(.initialize, initArgs()), room: 80, on: &d.request)
            try device.process(queue: 1, queues: &q)
            try share.writeHost("f", "x")
            let node = try share.lookup("f").nodeid
            try submit(fuseMessage(.forget, node: node, FuseArgs.build { $0.u64(1) }), room: 0, on: &d.hiprio,
                       at: 0x43000)
            try device.process(queue: 0, queues: &q)
            #expect(try d.hiprio.usedElement(0) == (0, 0))
            #expect(share.fileSystem.lookupCount(node) == nil)
        }

        @Test func aLoopingChainIsAQueueErrorForTheTransport() throws {
            var d = drivers()
            var q = queues(d)
            try d.request.setDescriptor(0, .init(address: 0x40000, length: 40, flags: 1, next: 0))
            try d.request.publish(0)
            #expect(throws: Virtqueue.QueueError.chainTooLong(head: 0, limit: 8)) {
                try device.process(queue: 1, queues: &q)
            }
        }

        @Test func resetEndsTheSession() throws {
            var d = drivers()
            var q = queues(d)
            try submit(fuseMessage(.initialize, initArgs()), room: 80, on: &d.request)
            try device.process(queue: 1, queues: &q)
            try share.writeHost("f", "x")
            _ = try share.lookup("f")
            device.reset()
            #expect(share.server.session == nil && share.fileSystem.inodeCount == 1)
        }

        @Test func servesRequestsThroughTheMMIOTransport() throws {
            let recorder = Recorder()
            let transport = VirtioMMIOTransport(
                name: "test-fs", device: device, base: GuestAddress(0xd000_0000), irq: 6, memory: memory,
                interrupt: { recorder.interrupts.add(1, ordering: .relaxed) },
                log: { message in recorder.logs.withLock { $0.append(message) } })
            func w(_ offset: UInt64, _ value: UInt64) { transport.write(offset: offset, length: 4, value: value) }
            #expect(transport.read(offset: 0x008, length: 4) == 26)
            #expect(transport.read(offset: 0x100, length: 4) == 0x746f_6f72)
            var d = drivers()
            transport.bringUpLikeLinux(queues: [d.hiprio, d.request]) { i in
                #expect(transport.read(offset: 0x34, length: 4) == [128, 256][i])
            }
            try submit(fuseMessage(.initialize, unique: 77, initArgs()), room: 80, on: &d.request)
            w(0x50, 1)                                  // QueueNotify(1)
            #expect(try d.request.usedElement(0) == (0, 80))
            #expect(FuseTestReply(try memory.readBytes(at: GuestAddress(0x50000), count: 80)).unique == 77)
            #expect(recorder.interrupts.load(ordering: .relaxed) == 1)
            #expect(transport.read(offset: 0x70, length: 4) & 0x40 == 0)
        }
    }
}
