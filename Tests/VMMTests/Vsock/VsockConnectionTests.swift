import Testing
#if canImport(Glibc)
import Glibc
#endif
@testable import VMM

extension VsockTests {
    /// Whole connections between the mock guest and real Unix sockets in a temp dir.
    @Suite struct ConnectionTests {
        static let guestPort: UInt32 = 5000
        static let hostPort: UInt32 = 1234

        /// A guest-initiated connection to a host listener, accepted.
        func connected(_ h: VsockHarness) throws -> (listener: OwnedDescriptor, host: VsockHostEnd) {
            let listener = try VsockHostSocket.listen(at: h.path + "_\(Self.hostPort)")
            try h.send(.request, guestPort: Self.guestPort, hostPort: Self.hostPort)
            let host = try VsockHostEnd.accept(listener, harness: h)
            return (listener, host)
        }

        @Test func aGuestConnectGetsAResponseFromTheListeningSocket() throws {
            let h = try VsockHarness()
            let connection = try connected(h)
            defer { withExtendedLifetime(connection) {} }
            let response = try #require(h.received.first).header
            #expect(h.received.count == 1)
            #expect(response.op == .response && response.type == .stream)
            #expect(response.sourceCID == 2 && response.destinationCID == 3)
            #expect(response.sourcePort == Self.hostPort && response.destinationPort == Self.guestPort)
            #expect(response.bufAlloc == 256 << 10 && response.fwdCnt == 0)
            #expect(h.device.connectionCount == 1)
        }

        @Test func noListenerMeansRST() throws {
            let h = try VsockHarness()
            try h.send(.request, guestPort: Self.guestPort, hostPort: 4321)
            #expect(h.received.map(\.header.op) == [.reset])
            // A socket file with no one listening behind it (its listener closed): refused as well.
            do { _ = try VsockHostSocket.listen(at: h.path + "_4322") }
            try h.send(.request, guestPort: Self.guestPort, hostPort: 4322)
            #expect(h.received.map(\.header.op) == [.reset, .reset])
            #expect(h.device.connectionCount == 0)
        }

        @Test func bytesFlowBothWaysExactly() throws {
            let h = try VsockHarness()
            let (_, host) = try connected(h)
            try h.send(.readWrite, guestPort: Self.guestPort, hostPort: Self.hostPort, payload: Array("ping\n".utf8))
            #expect(try host.read(count: 5, harness: h).bytes == Array("ping\n".utf8))
            try host.write(Array("pong\n".utf8), harness: h)
            try h.run(until: { h.credit[Self.guestPort]?.data.count == 5 }, "pong")
            #expect(h.credit[Self.guestPort]?.data == Array("pong\n".utf8))
            let rw = h.packets(.readWrite)
            #expect(rw.count == 1)
            #expect(rw[0].sourcePort == Self.hostPort && rw[0].destinationPort == Self.guestPort && rw[0].length == 5)
            #expect(rw[0].fwdCnt == 5)       // the ping reached the host
        }

        @Test func aMegabyteFromTheGuestArrivesByteExactThroughCredit() throws {
            let h = try VsockHarness()
            let (_, host) = try connected(h)
            let data = vsockPattern(1 << 20)
            var got: [UInt8] = []
            func drain() {
                while case .data(let d) = host.readNow() { got += d }
            }
            // The host does not read until the guest runs out of credit: then the
            // device's buffer and the socket are full, and only reading frees credit.
            try h.sendStream(data, guestPort: Self.guestPort, hostPort: Self.hostPort, whileBlocked: drain)
            try h.send(.shutdown, guestPort: Self.guestPort, hostPort: Self.hostPort, flags: VsockShutdown.send)
            let rest = try host.read(count: Int.max, harness: h)
            got += rest.bytes
            #expect(rest.ended)
            #expect(got.count == data.count)
            #expect(got == data)
            #expect(h.packets(.creditUpdate).count > 0)
            #expect(h.packets(.reset).isEmpty)
        }

        @Test func aMegabyteFromTheHostNeverExceedsTheGuestsCredit() throws {
            let h = try VsockHarness()
            h.guestBufAlloc = 16 << 10
            let (_, host) = try connected(h)
            let data = vsockPattern(1 << 20, seed: 7)
            var offset = 0
            try h.run(until: {
                offset += host.writeSome(data[offset...])
                return h.credit[Self.guestPort]?.data.count == data.count
            }, "a megabyte to the guest")
            #expect(h.credit[Self.guestPort]?.data == data)
            // Every RW fitted the credit (checked as each arrived) and a receive buffer.
            #expect(h.packets(.readWrite).allSatisfy { $0.length <= 4096 })
        }

        @Test func withoutCreditTheDeviceStopsAndWaits() throws {
            let h = try VsockHarness()
            h.guestBufAlloc = 10_000
            h.autoConsume = false
            let (_, host) = try connected(h)
            let data = vsockPattern(30_000)
            #expect(host.writeSome(data[...]) == 30_000)
            // The guest does not consume: exactly its 10 000 bytes of credit arrive.
            try h.run(until: { (h.credit[Self.guestPort]?.received ?? 0) == 10_000 }, "credit used up")
            for _ in 0..<5 {
                try h.pump(wait: 0.01)
            }
            #expect(h.credit[Self.guestPort]?.received == 10_000)
            // CREDIT_UPDATE after consuming: the next 10 000.
            try h.consume(guestPort: Self.guestPort, hostPort: Self.hostPort)
            try h.run(until: { (h.credit[Self.guestPort]?.received ?? 0) == 20_000 }, "second window")
            try h.pump(wait: 0.01)
            #expect(h.credit[Self.guestPort]?.received == 20_000)
            // CREDIT_REQUEST is answered with the device's own credit.
            try h.send(.creditRequest, guestPort: Self.guestPort, hostPort: Self.hostPort)
            #expect(h.received.last?.header.op == .creditUpdate)
            try h.consume(guestPort: Self.guestPort, hostPort: Self.hostPort)
            try h.run(until: { h.credit[Self.guestPort]?.data.count == 30_000 }, "the rest")
            #expect(h.credit[Self.guestPort]?.data == data)
        }

        @Test func aGuestThatIgnoresCreditIsReset() throws {
            var limits = VirtioVsock.Limits()
            limits.connectionBuffer = 4096
            let h = try VsockHarness(limits: limits)
            let (_, host) = try connected(h)
            try h.send(.readWrite, guestPort: Self.guestPort, hostPort: Self.hostPort, payload: vsockPattern(4097))
            #expect(h.received.last?.header.op == .reset)
            #expect(h.device.connectionCount == 0)
            #expect(try host.read(count: 1, harness: h).ended)
            #expect(h.logs.logs.withLock { $0 }.contains { $0.contains("4097 bytes sent with 4096 bytes of credit") })
        }

        @Test func guestShutdownOfSendingIsEndOfFileForTheHost() throws {
            let h = try VsockHarness()
            let (_, host) = try connected(h)
            try h.send(.readWrite, guestPort: Self.guestPort, hostPort: Self.hostPort, payload: Array("last words".utf8))
            try h.send(.shutdown, guestPort: Self.guestPort, hostPort: Self.hostPort, flags: VsockShutdown.send)
            let read = try host.read(count: Int.max, harness: h)
            #expect(read.bytes == Array("last words".utf8) && read.ended)
            // The other direction still works.
            try host.write(Array("reply".utf8), harness: h)
            try h.run(until: { h.credit[Self.guestPort]?.data == Array("reply".utf8) }, "reply after half-close")
            #expect(h.device.connectionCount == 1)
        }

        @Test func guestCloseIsAnsweredWithRSTAfterTheDataIsOut() throws {
            let h = try VsockHarness()
            let (_, host) = try connected(h)
            try h.send(.readWrite, guestPort: Self.guestPort, hostPort: Self.hostPort, payload: Array("bye".utf8))
            try h.send(.shutdown, guestPort: Self.guestPort, hostPort: Self.hostPort, flags: VsockShutdown.both)
            #expect(h.received.last?.header.op == .reset)
            #expect(h.device.connectionCount == 0)
            let read = try host.read(count: Int.max, harness: h)
            #expect(read.bytes == Array("bye".utf8) && read.ended)
        }

        @Test func guestRSTClosesTheHostSocket() throws {
            let h = try VsockHarness()
            let (_, host) = try connected(h)
            try h.send(.reset, guestPort: Self.guestPort, hostPort: Self.hostPort)
            #expect(h.device.connectionCount == 0)
            #expect(try host.read(count: 1, harness: h).ended)
            #expect(h.packets(.reset).isEmpty)         // an RST is not answered
        }

        @Test func hostCloseIsShutdownForTheGuest() throws {
            let h = try VsockHarness()
            var host: VsockHostEnd? = try connected(h).host
            #expect(host?.writeSome(Array("final".utf8)[...]) == 5)
            host = nil          // close(2): both directions
            try h.run(until: { !h.packets(.shutdown).isEmpty }, "SHUTDOWN")
            #expect(h.credit[Self.guestPort]?.data == Array("final".utf8))
            let shutdown = try #require(h.packets(.shutdown).first)
            #expect(shutdown.flags == VsockShutdown.both)
            // The data came before the SHUTDOWN.
            #expect(h.received.map(\.header.op).suffix(2) == [.readWrite, .shutdown])
            // Linux answers a full SHUTDOWN with RST: the connection is gone.
            try h.send(.reset, guestPort: Self.guestPort, hostPort: Self.hostPort)
            #expect(h.device.connectionCount == 0)
        }

        @Test func hostHalfCloseLeavesTheGuestSending() throws {
            let h = try VsockHarness()
            let (_, host) = try connected(h)
            host.shutdownWrite()
            try h.run(until: { !h.packets(.shutdown).isEmpty }, "SHUTDOWN")
            #expect(h.packets(.shutdown).first?.flags == VsockShutdown.send)
            try h.send(.readWrite, guestPort: Self.guestPort, hostPort: Self.hostPort, payload: Array("still here".utf8))
            #expect(try host.read(count: 10, harness: h).bytes == Array("still here".utf8))
            // The guest closes too: RST ends it.
            try h.send(.shutdown, guestPort: Self.guestPort, hostPort: Self.hostPort, flags: VsockShutdown.both)
            #expect(h.received.last?.header.op == .reset)
            #expect(h.device.connectionCount == 0)
        }

        @Test func hostDataWaitsWhileTheGuestRefusesToReceive() throws {
            let h = try VsockHarness()
            let (_, host) = try connected(h)
            try h.send(.shutdown, guestPort: Self.guestPort, hostPort: Self.hostPort, flags: VsockShutdown.receive)
            #expect(host.writeSome(Array("unwanted".utf8)[...]) == 8)
            for _ in 0..<5 { try h.pump(wait: 0.01) }
            #expect(h.packets(.readWrite).isEmpty)
            #expect(!h.device.poller.hasEvents)        // not armed: no busy loop
        }

        @Test func connectionsAreLimited() throws {
            var limits = VirtioVsock.Limits()
            limits.maxConnections = 2
            let h = try VsockHarness(limits: limits)
            let listener = try VsockHostSocket.listen(at: h.path + "_\(Self.hostPort)")
            for port: UInt32 in 1...3 { try h.send(.request, guestPort: port, hostPort: Self.hostPort) }
            #expect(h.received.map(\.header.op) == [.response, .response, .reset])
            #expect(h.device.connectionCount == 2)
            _ = listener
        }

        @Test func aSecondRequestOnALiveConnectionResetsIt() throws {
            let h = try VsockHarness()
            let (_, host) = try connected(h)
            try h.send(.request, guestPort: Self.guestPort, hostPort: Self.hostPort)
            #expect(h.received.last?.header.op == .reset)
            #expect(h.device.connectionCount == 0)
            #expect(try host.read(count: 1, harness: h).ended)
        }

        @Test func twoConnectionsShareReceiveBuffersFairly() throws {
            let h = try VsockHarness()
            let listener = try VsockHostSocket.listen(at: h.path + "_\(Self.hostPort)")
            try h.send(.request, guestPort: 1, hostPort: Self.hostPort)
            let a = try VsockHostEnd.accept(listener, harness: h)
            try h.send(.request, guestPort: 2, hostPort: Self.hostPort)
            let b = try VsockHostEnd.accept(listener, harness: h)
            let da = vsockPattern(100_000, seed: 3), db = vsockPattern(100_000, seed: 5)
            var oa = 0, ob = 0
            try h.run(until: {
                oa += a.writeSome(da[oa...])
                ob += b.writeSome(db[ob...])
                return h.credit[1]?.data.count == da.count && h.credit[2]?.data.count == db.count
            }, "both streams")
            #expect(h.credit[1]?.data == da)
            #expect(h.credit[2]?.data == db)
        }

        // MARK: host-initiated

        @Test func aHostConnectReachesTheGuestPort() throws {
            let h = try VsockHarness()
            let host = try VsockHostEnd.connect(h.path)
            // The command and the first stream bytes in one write.
            try host.write(Array("CONNECT 52\nhello".utf8), harness: h)
            try h.run(until: { !h.packets(.request).isEmpty }, "REQUEST")
            let request = try #require(h.packets(.request).first)
            #expect(request.destinationPort == 52 && request.destinationCID == 3 && request.sourceCID == 2)
            #expect(request.sourcePort == 1 << 30)
            #expect(request.bufAlloc == 256 << 10)
            #expect(host.readNow() == .wouldBlock)        // no OK before the guest accepts
            try h.send(.response, guestPort: 52, hostPort: request.sourcePort)
            #expect(try host.read(count: 14, harness: h).bytes == Array("OK 1073741824\n".utf8))
            try h.run(until: { h.credit[52]?.data == Array("hello".utf8) }, "hello")
            try h.send(.readWrite, guestPort: 52, hostPort: request.sourcePort, payload: Array("world".utf8))
            #expect(try host.read(count: 5, harness: h).bytes == Array("world".utf8))
            // A second connection to the same guest port gets the next host port.
            let other = try VsockHostEnd.connect(h.path)
            try other.write(Array("CONNECT 52\r\n".utf8), harness: h)
            try h.run(until: { h.packets(.request).count == 2 }, "second REQUEST")
            #expect(h.packets(.request)[1].sourcePort == (1 << 30) + 1)
        }

        @Test func aCommandInPiecesIsAssembled() throws {
            let h = try VsockHarness()
            let host = try VsockHostEnd.connect(h.path)
            for piece in ["CON", "NECT 7", "7", "\n"] {
                try host.write(Array(piece.utf8), harness: h)
                try h.pump(wait: 0.01)
            }
            try h.run(until: { !h.packets(.request).isEmpty }, "REQUEST")
            #expect(h.packets(.request).first?.destinationPort == 77)
        }

        @Test func aGuestRefusalClosesTheHostConnection() throws {
            let h = try VsockHarness()
            let host = try VsockHostEnd.connect(h.path)
            try host.write(Array("CONNECT 52\n".utf8), harness: h)
            try h.run(until: { !h.packets(.request).isEmpty }, "REQUEST")
            try h.send(.reset, guestPort: 52, hostPort: 1 << 30)
            let read = try host.read(count: Int.max, harness: h)
            #expect(read.bytes.isEmpty && read.ended)
            #expect(h.device.connectionCount == 0)
        }

        @Test(arguments: ["HELLO 52\n", "CONNECT x\n", "CONNECT 99999999999\n", String(repeating: "A", count: 40)])
        func aBadCommandClosesTheHostConnection(_ command: String) throws {
            let h = try VsockHarness()
            let host = try VsockHostEnd.connect(h.path)
            try host.write(Array(command.utf8), harness: h)
            let read = try host.read(count: Int.max, harness: h)
            #expect(read.bytes.isEmpty && read.ended)
            #expect(h.packets(.request).isEmpty)
        }

        @Test func aHostThatGivesUpBeforeTheGuestAnswersIsForgotten() throws {
            let h = try VsockHarness()
            var host: VsockHostEnd? = try VsockHostEnd.connect(h.path)
            try host!.write(Array("CONNECT 52\n".utf8), harness: h)
            try h.run(until: { !h.packets(.request).isEmpty }, "REQUEST")
            host = nil
            try h.run(until: { h.device.connectionCount == 0 }, "connection dropped")
            #expect(h.packets(.reset).count == 1)
            // The guest's late RESPONSE is refused.
            try h.send(.response, guestPort: 52, hostPort: 1 << 30)
            #expect(h.packets(.reset).count == 2)
        }
    }
}
