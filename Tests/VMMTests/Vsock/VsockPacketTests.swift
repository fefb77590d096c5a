import Testing
@testable import VMM

extension VsockTests {
    /// The 44-byte header and the packet parser, fed what a hostile guest could send.
    @Suite struct PacketTests {
        let sample = VsockHeader(sourceCID: 3, destinationCID: 2, sourcePort: 0x1234_5678, destinationPort: 52,
                                 length: 0, type: .stream, op: .request, flags: 0xa1b2_c3d4,
                                 bufAlloc: 256 << 10, fwdCnt: 0xdead_beef)

        @Test func headerHasTheLinuxLayout() {
            let bytes = sample.bytes
            #expect(bytes.count == 44)
            #expect(Array(bytes[0..<8]) == [3, 0, 0, 0, 0, 0, 0, 0])               // src_cid
            #expect(Array(bytes[8..<16]) == [2, 0, 0, 0, 0, 0, 0, 0])              // dst_cid
            #expect(Array(bytes[16..<20]) == [0x78, 0x56, 0x34, 0x12])             // src_port
            #expect(Array(bytes[20..<24]) == [52, 0, 0, 0])                        // dst_port
            #expect(Array(bytes[28..<30]) == [1, 0])                               // type
            #expect(Array(bytes[30..<32]) == [1, 0])                               // op
            #expect(Array(bytes[32..<36]) == [0xd4, 0xc3, 0xb2, 0xa1])             // flags
            #expect(Array(bytes[36..<40]) == [0, 0, 4, 0])                         // buf_alloc
            #expect(Array(bytes[40..<44]) == [0xef, 0xbe, 0xad, 0xde])             // fwd_cnt
            #expect(VsockHeader(bytes) == sample)
            #expect(VsockHeader(bytes[1...]) == nil)
        }

        @Test func aReadWritePacketRoundTrips() throws {
            var header = sample
            header.op = .readWrite
            let packet = VsockPacket(header: header, payload: Array("hello".utf8))
            let parsed = try VsockPacket.parse(packet.bytes, maxPayload: 64 << 10)
            #expect(parsed.payload == Array("hello".utf8))
            #expect(parsed.header.length == 5)
            // Bytes after `len` (a chain longer than its packet) are not payload.
            let padded = try VsockPacket.parse(packet.bytes + [9, 9, 9], maxPayload: 64 << 10)
            #expect(padded.payload == Array("hello".utf8))
        }

        @Test(arguments: [0, 1, 43])
        func aShortHeaderHasNoOneToAnswer(count: Int) {
            #expect(throws: VsockPacketError.shortHeader(bytes: count)) {
                try VsockPacket.parse(Array(sample.bytes.prefix(count)), maxPayload: 64 << 10)
            }
            #expect(VsockPacketError.shortHeader(bytes: count).header == nil)
        }

        @Test func aLengthBeyondTheChainIsTruncated() {
            var header = sample
            header.op = .readWrite
            header.length = 100
            let bytes = header.bytes + [UInt8](repeating: 7, count: 99)
            #expect(throws: VsockPacketError.payloadTruncated(header: header, available: 99)) {
                try VsockPacket.parse(bytes, maxPayload: 64 << 10)
            }
        }

        @Test(arguments: [UInt32(64 << 10) + 1, UInt32.max])
        func aLengthBeyondTheLimitIsRefusedBeforeLookingFurther(length: UInt32) {
            var header = sample
            header.op = .readWrite
            header.length = length
            let error = VsockPacketError.payloadTooLong(header: header, limit: 64 << 10)
            #expect(throws: error) { try VsockPacket.parse(header.bytes, maxPayload: 64 << 10) }
            #expect(error.header == header)
            #expect(error.description.contains("more than the 65536 accepted"))
        }

        @Test func unknownOpsAndTypesSurviveParsing() throws {
            var header = sample
            header.op = VsockOperation(rawValue: 99)
            header.type = VsockType(rawValue: 7)
            let parsed = try VsockPacket.parse(header.bytes, maxPayload: 64 << 10)
            #expect(parsed.header.op.rawValue == 99 && parsed.header.type.rawValue == 7)
            #expect(parsed.header.op.description == "op 99")
        }

        @Test func onlyReadWriteCarriesPayload() throws {
            var header = sample
            header.op = .shutdown
            header.length = 3
            let parsed = try VsockPacket.parse(header.bytes + [1, 2, 3], maxPayload: 64 << 10)
            #expect(parsed.payload.isEmpty)
        }

        @Test func connectCommandsAreStrict() {
            func parse(_ s: String) -> UInt32? { VirtioVsock.parseConnectCommand(Array(s.utf8)) }
            #expect(parse("CONNECT 52\n") == 52)
            #expect(parse("CONNECT 52\r\n") == 52)
            #expect(parse("CONNECT 4294967295\n") == UInt32.max)
            #expect(parse("CONNECT 4294967296\n") == nil)
            #expect(parse("CONNECT 52") == nil)
            #expect(parse("CONNECT \n") == nil)
            #expect(parse("CONNECT -1\n") == nil)
            #expect(parse("CONNECT 5 2\n") == nil)
            #expect(parse("connect 52\n") == nil)
            #expect(parse("CONNECT 00000000052\n") == nil)
        }
    }
}
