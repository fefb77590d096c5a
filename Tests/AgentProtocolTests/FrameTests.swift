import Testing
import OCIBundle
@testable import AgentProtocol

@Suite struct FrameTests {
    static let create = ControlMessage(
        type: .create, process: 1,
        spec: Spec.example(args: ["sh", "-c", "exit 3"]).process)

    @Test(arguments: [
        Frame.control(.hello()),
        Frame.control(create),
        Frame.control(ControlMessage(type: .exited, process: 1, exitCode: 3)),
        Frame.data(process: 7, stream: .stdout, bytes: Array("hello\n".utf8)),
        Frame.data(process: 7, stream: .stdin, bytes: []),
    ])
    func roundTrips(_ frame: Frame) throws {
        var reader = FrameReader()
        #expect(try reader.feed(frame.encoded()) == [frame])
    }

    @Test func framesSplitAnywhereReassemble() throws {
        let frames: [Frame] = [.control(.hello()), .data(process: 1, stream: .stderr, bytes: [0, 255, 10]), .control(Self.create)]
        let bytes = try frames.flatMap { try $0.encoded() }
        for cut in [1, 3, 4, 5, 17, bytes.count - 1] {
            var reader = FrameReader()
            let first = try reader.feed(bytes.prefix(cut))
            let second = try reader.feed(bytes.dropFirst(cut))
            #expect(first + second == frames, "cut at \(cut)")
        }
    }

    @Test func controlJSONIsCompactAndOmitsAbsentFields() throws {
        let bytes = try Frame.control(ControlMessage(type: .signal, process: 2, signal: 15)).encoded()
        #expect(String(decoding: bytes.dropFirst(5), as: UTF8.self) == #"{"process":2,"signal":15,"type":"signal"}"#)
    }

    @Test(arguments: [
        ([0, 0, 0, 0] as [UInt8], ProtocolError.emptyFrame),
        ([0xff, 0xff, 0xff, 0x7f], ProtocolError.frameTooLong(0x7fff_ffff)),
        ([1, 0, 0, 0, 9], ProtocolError.unknownKind(9)),
        ([3, 0, 0, 0, 2, 1, 0], ProtocolError.truncatedData(2)),
        ([6, 0, 0, 0, 2, 1, 0, 0, 0, 7], ProtocolError.unknownStream(7)),
    ])
    func hostileFramesAreErrors(bytes: [UInt8], error: ProtocolError) {
        var reader = FrameReader()
        #expect(throws: error) { try reader.feed(bytes) }
        // Once broken, the stream stays broken.
        #expect(throws: error) { try reader.feed(try Frame.control(.hello()).encoded()) }
    }

    @Test func invalidControlJSONNamesTheProblem() {
        var reader = FrameReader()
        let body = Array(#"{"type": 5}"#.utf8)
        var frame: [UInt8] = [UInt8(body.count + 1), 0, 0, 0, 1]
        frame += body
        #expect {
            try reader.feed(frame)
        } throws: { error in
            guard case ProtocolError.invalidControl(let why) = error else { return false }
            return why.contains("type")
        }
    }

    @Test func controlMessagesCarryWhatTheirTypeNeeds() throws {
        try ControlMessage.hello().validate()
        try Self.create.validate()
        #expect(throws: ProtocolError.unsupportedVersion(99)) { try ControlMessage(type: .hello, version: 99).validate() }
        #expect(throws: ProtocolError.invalidControl("create without spec")) { try ControlMessage(type: .create, process: 1).validate() }
        #expect(throws: ProtocolError.invalidControl("start without process")) { try ControlMessage(type: .start).validate() }
        #expect(throws: ProtocolError.invalidControl("exited without exactly one of exitCode, signal")) {
            try ControlMessage(type: .exited, process: 1, signal: 9, exitCode: 137).validate()
        }
        #expect(throws: ProtocolError.invalidControl("unknown type \"reboot\"")) {
            try ControlMessage(type: .init(rawValue: "reboot")).validate()
        }
    }

    @Test func aBufferNeverHoldsMoreThanOneFrame() throws {
        var reader = FrameReader()
        let big = Frame.data(process: 1, stream: .stdout, bytes: [UInt8](repeating: 1, count: Frame.maximumData))
        let bytes = try big.encoded()
        for _ in 0..<50 { #expect(try reader.feed(bytes).count == 1) }
    }
}
