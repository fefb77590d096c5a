import Testing
#if canImport(Glibc)
import Glibc
#endif
@testable import VMM

extension VsockTests {
    /// The device's identity, and what it does with packets a hostile guest sends.
    @Suite struct DeviceTests {
        @Test func identifiesAsVsockWithItsGuestCID() throws {
            let h = try VsockHarness()
            #expect(h.device.deviceType == 19)
            #expect(h.device.features == VirtioFeature.version1)
            #expect(h.device.queueSizes.count == 3)
            #expect(h.device.readConfig(offset: 0, length: 8) == 3)
            #expect(h.device.readConfig(offset: 0, length: 4) == 3)
            #expect(h.device.readConfig(offset: 4, length: 4) == 0)
            #expect(h.device.readConfig(offset: 8, length: 1) == 0)     // past the end
            #expect(h.device.readConfig(offset: -1, length: 1) == 0)
            #expect(h.device.readConfig(offset: 6, length: 4) == 0)     // straddles the end
            var st = stat()
            #expect(lstat(h.path, &st) == 0 && st.st_mode & S_IFMT == S_IFSOCK)
        }

        @Test func largeCIDsAreReadByteWise() throws {
            let directory = try VsockTemporaryDirectory()
            let device = try VirtioVsock(guestCID: 0x1234_5678, socketPath: directory.path + "/v", log: { _ in })
            #expect(device.readConfig(offset: 0, length: 8) == 0x1234_5678)
            #expect(device.readConfig(offset: 1, length: 2) == 0x3456)
            #expect(device.readConfig(offset: 3, length: 1) == 0x12)
        }

        @Test func refusesReservedCIDsAndLongPaths() throws {
            let directory = try VsockTemporaryDirectory()
            for cid: UInt64 in [0, 1, 2, 0xffff_ffff, 1 << 32] {
                #expect(throws: VirtioVsock.ConfigurationError.self) {
                    try VirtioVsock(guestCID: cid, socketPath: directory.path + "/v", log: { _ in })
                }
            }
            let long = directory.path + "/" + String(repeating: "s", count: 100)
            #expect(throws: VirtioVsock.ConfigurationError.self) {
                try VirtioVsock(guestCID: 3, socketPath: long, log: { _ in })
            }
            // A regular file is not replaced; a stale socket is.
            let file = directory.path + "/file"
            close(open(file, O_CREAT | O_WRONLY, 0o600))
            #expect(throws: VirtioVsock.ConfigurationError.self) {
                try VirtioVsock(guestCID: 3, socketPath: file, log: { _ in })
            }
            let stale = directory.path + "/stale"
            _ = try VsockHostSocket.listen(at: stale)
            _ = try VirtioVsock(guestCID: 3, socketPath: stale, log: { _ in })
        }

        @Test func theSocketFileGoesWithTheDevice() throws {
            let directory = try VsockTemporaryDirectory()
            var device: VirtioVsock? = try VirtioVsock(guestCID: 3, socketPath: directory.path + "/v", log: { _ in })
            #expect(access(directory.path + "/v", F_OK) == 0)
            _ = device
            device = nil
            #expect(access(directory.path + "/v", F_OK) != 0)
        }

        /// Each of these gets exactly one RST back, addressed to where it came from.
        @Test(arguments: [
            ("no listener on the port", VsockHeader(sourceCID: 3, destinationCID: 2, sourcePort: 1000, destinationPort: 7, op: .request)),
            ("another CID", VsockHeader(sourceCID: 3, destinationCID: 5, sourcePort: 1000, destinationPort: 7, op: .request)),
            ("SEQPACKET", VsockHeader(sourceCID: 3, destinationCID: 2, sourcePort: 1000, destinationPort: 7, type: .seqpacket, op: .request)),
            ("unknown type", VsockHeader(sourceCID: 3, destinationCID: 2, sourcePort: 1000, destinationPort: 7, type: VsockType(rawValue: 9), op: .request)),
            ("unknown op", VsockHeader(sourceCID: 3, destinationCID: 2, sourcePort: 1000, destinationPort: 7, op: VsockOperation(rawValue: 99))),
            ("INVALID op", VsockHeader(sourceCID: 3, destinationCID: 2, sourcePort: 1000, destinationPort: 7, op: .invalid)),
            ("RW without a connection", VsockHeader(sourceCID: 3, destinationCID: 2, sourcePort: 1000, destinationPort: 7, op: .readWrite)),
            ("SHUTDOWN without a connection", VsockHeader(sourceCID: 3, destinationCID: 2, sourcePort: 1000, destinationPort: 7, op: .shutdown, flags: 3)),
            ("RESPONSE without a request", VsockHeader(sourceCID: 3, destinationCID: 2, sourcePort: 1000, destinationPort: 7, op: .response)),
            ("CREDIT_REQUEST without a connection", VsockHeader(sourceCID: 3, destinationCID: 2, sourcePort: 1000, destinationPort: 7, op: .creditRequest)),
        ])
        func isAnsweredWithRST(_ what: String, _ header: VsockHeader) throws {
            let h = try VsockHarness()
            try h.sendRaw(header.bytes)
            #expect(h.received.count == 1, "\(what)")
            let reply = try #require(h.received.first).header
            #expect(reply.op == .reset)
            #expect(reply.sourceCID == header.destinationCID && reply.destinationCID == 3)
            #expect(reply.sourcePort == header.destinationPort && reply.destinationPort == header.sourcePort)
            #expect(reply.type == header.type)
            #expect(h.device.connectionCount == 0)
        }

        @Test func malformedPacketsGetRSTOrNothingAndTheDeviceCarriesOn() throws {
            let h = try VsockHarness()
            // Too short for a header: dropped.
            try h.sendRaw([1, 2, 3])
            try h.sendRaw([])
            // A forged source CID: dropped (the RST would go to someone else).
            try h.sendRaw(VsockHeader(sourceCID: 4, destinationCID: 2, sourcePort: 1, destinationPort: 7, op: .request).bytes)
            // An RST is never answered.
            try h.sendRaw(VsockHeader(sourceCID: 3, destinationCID: 2, sourcePort: 1, destinationPort: 7, op: .reset).bytes)
            #expect(h.received.isEmpty)
            // A length beyond the chain, and beyond the packet limit: RST.
            var header = VsockHeader(sourceCID: 3, destinationCID: 2, sourcePort: 2, destinationPort: 7, op: .readWrite)
            header.length = 50
            try h.sendRaw(header.bytes + [0, 1, 2])
            header.length = UInt32.max
            header.sourcePort = 3
            try h.sendRaw(header.bytes)
            #expect(h.received.map(\.header.op) == [.reset, .reset])
            #expect(h.received.map(\.header.destinationPort) == [2, 3])
            // Still serving: a real connection works.
            let listener = try VsockHostSocket.listen(at: h.path + "_7")
            try h.send(.request, guestPort: 10, hostPort: 7)
            #expect(h.received.last?.header.op == .response)
            _ = listener
            #expect(h.logs.logs.withLock { $0 }.contains { $0.contains("shorter than its 44-byte header") })
        }

        @Test func aTransmitChainInManyPiecesIsOnePacket() throws {
            let h = try VsockHarness()
            let listener = try VsockHostSocket.listen(at: h.path + "_7")
            try h.send(.request, guestPort: 10, hostPort: 7)
            let host = try VsockHostEnd.accept(listener, harness: h)
            // Header split 10 + 34, payload in two more descriptors, as a driver may.
            var header = h.header(.readWrite, guestPort: 10, hostPort: 7)
            header.length = 6
            let bytes = header.bytes + Array("abcdef".utf8)
            let pieces = [(0, 10), (10, 34), (44, 3), (47, 3)]
            for (i, (offset, length)) in pieces.enumerated() {
                let address = 0x500000 + UInt64(i) * 0x100
                try h.memory.write(bytes: Array(bytes[offset..<offset + length]), at: GuestAddress(address))
                try h.tx.setDescriptor(UInt16(i), .init(address: address, length: UInt32(length),
                                                        flags: i < 3 ? 1 : 0, next: UInt16(i + 1)))
            }
            try h.tx.publish(0)
            try h.device.process(queue: 1, queues: &h.queues)
            #expect(try host.read(count: 6, harness: h).bytes == Array("abcdef".utf8))
        }

        @Test func aLoopingTransmitChainIsAQueueErrorNotACrash() throws {
            let h = try VsockHarness()
            try h.tx.setDescriptor(0, .init(address: 0x300000, length: 44, flags: 1, next: 0))
            try h.tx.publish(0)
            #expect(throws: Virtqueue.QueueError.self) { try h.device.process(queue: 1, queues: &h.queues) }
        }

        @Test func receiveBuffersTooSmallForAHeaderAreReturnedUnused() throws {
            let h = try VsockHarness(rxBuffers: 0)
            try h.rx.setDescriptor(0, .init(address: VsockHarness.rxAddress(0), length: 20, flags: 2))
            try h.rx.publish(0)
            try h.rx.setDescriptor(1, .init(address: VsockHarness.rxAddress(1), length: VsockHarness.rxBufferSize, flags: 2))
            try h.rx.publish(1)
            try h.sendRaw(VsockHeader(sourceCID: 3, destinationCID: 2, sourcePort: 1, destinationPort: 7, op: .request).bytes,
                          collecting: false)
            #expect(try h.rx.usedElement(0) == (0, 0))
            #expect(try h.rx.usedElement(1) == (1, 44))
        }

        @Test func repliesWaitForReceiveBuffers() throws {
            let h = try VsockHarness(rxBuffers: 0)
            for port: UInt32 in 1...3 {
                try h.sendRaw(VsockHeader(sourceCID: 3, destinationCID: 2, sourcePort: port, destinationPort: 7, op: .request).bytes)
            }
            #expect(h.received.isEmpty)
            for i: UInt16 in 0..<2 {
                try h.rx.setDescriptor(i, .init(address: VsockHarness.rxAddress(i), length: VsockHarness.rxBufferSize, flags: 2))
                try h.rx.publish(i)
            }
            try h.device.process(queue: 0, queues: &h.queues)
            try h.collect()       // recycles the two buffers: the third reply follows
            try h.collect()
            #expect(h.received.map(\.header.destinationPort) == [1, 2, 3])
            #expect(h.queues.interruptPending)
        }

        @Test func pendingResetsAreBounded() throws {
            var limits = VirtioVsock.Limits()
            limits.maxPendingResets = 4
            let h = try VsockHarness(limits: limits, rxBuffers: 0)
            for port: UInt32 in 1...10 {
                try h.sendRaw(VsockHeader(sourceCID: 3, destinationCID: 2, sourcePort: port, destinationPort: 7, op: .request).bytes)
            }
            for i: UInt16 in 0..<8 {
                try h.rx.setDescriptor(i, .init(address: VsockHarness.rxAddress(i), length: VsockHarness.rxBufferSize, flags: 2))
                try h.rx.publish(i)
            }
            try h.device.process(queue: 0, queues: &h.queues)
            try h.collect()
            #expect(h.received.map(\.header.destinationPort) == [1, 2, 3, 4])
        }

        @Test func aResetDropsEveryConnection() throws {
            let h = try VsockHarness()
            let listener = try VsockHostSocket.listen(at: h.path + "_7")
            try h.send(.request, guestPort: 10, hostPort: 7)
            let host = try VsockHostEnd.accept(listener, harness: h)
            #expect(h.device.connectionCount == 1)
            h.device.reset()
            #expect(h.device.connectionCount == 0)
            #expect(host.readNow() == .end)
            // Inactive: host connections wait in the backlog, unserved.
            let early = try VsockHostEnd.connect(h.path)
            #expect(early.writeSome(Array("CONNECT 5\n".utf8)[...]) == 10)
            try h.pump()
            #expect(!h.device.poller.hasEvents)
            #expect(h.packets(.request).isEmpty)
            h.device.activate(features: VirtioFeature.version1, queues: &h.queues)
            try h.run(until: { !h.packets(.request).isEmpty }, "REQUEST after activation")
        }
    }
}
