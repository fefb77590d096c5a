// vsock packets (Sources/VMM/Devices/Vsock/VsockPacket.swift) and the device's guest
// side (VirtioVsock+Guest.swift: the connection state machine and credit). The input
// is a sequence of packets as the guest's transmit queue carries them, each 44 bytes
// of header plus as many payload bytes as its `len` says (the last one cut at the
// end of the input). Each is parsed (oracle: a parsed packet re-encodes to the bytes
// it came from) and handed to one VirtioVsock (guest CID 3) whose host side has a
// listener on port 1024, so REQUESTs to it connect; the device is reset after each
// input.
#if canImport(Glibc)
import Glibc
#endif
@testable import VMM

let maxPayload = VirtioVsock.Limits().maxPayload
nonisolated(unsafe) var device: VirtioVsock!
nonisolated(unsafe) var hostListener: OwnedDescriptor!
nonisolated(unsafe) var socketDirectory = ""

@_cdecl("LLVMFuzzerInitialize")
public func fuzzInitialize(_ argc: UnsafeMutableRawPointer?, _ argv: UnsafeMutableRawPointer?) -> CInt {
    writeSeedsIfAsked(vsockSeeds)
    socketDirectory = makeTemporaryDirectory("sm-fuzz-vsock")
    let path = socketDirectory + "/v.sock"
    do {
        device = try VirtioVsock(guestCID: 3, socketPath: path, log: { _ in })
        hostListener = try VsockHostSocket.listen(at: path + "_1024", backlog: 256)
    } catch { fuzzFailure("vsock device: \(error)") }
    _ = fcntl(hostListener.rawValue, F_SETFL, O_NONBLOCK)
    atexit {
        device = nil
        hostListener = nil
        unlink(socketDirectory + "/v.sock_1024")
        rmdir(socketDirectory)
    }
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = FuzzInput(data, size).bytes
    var offset = 0
    var count = 0
    while offset < input.count && count < 64 {
        let rest = input.count - offset
        var length = rest
        if rest >= VsockHeader.size {
            let declared = (32..<36).reduce(0) { $0 | Int(input[offset + $1]) << (8 * ($1 - 32)) }
            length = min(VsockHeader.size + declared, rest)
        }
        let bytes = Array(input[offset..<offset + length])
        offset += length
        count += 1
        check(bytes)
        device.receive(bytes)
    }
    device.reset()
    // Drop the connections the device made to the host listener.
    while let connection = try? VsockHostSocket.accept(hostListener, path: "port 1024") { _ = connection }
    return 0
}

func check(_ bytes: [UInt8]) {
    let packet: VsockPacket
    do {
        packet = try VsockPacket.parse(bytes, maxPayload: maxPayload)
    } catch {
        _ = error.description
        switch error {
        case .shortHeader(let n): guard n == bytes.count, n < VsockHeader.size else { fuzzFailure("\(error)") }
        case .payloadTooLong(let h, _): guard Int(h.length) > maxPayload else { fuzzFailure("\(error)") }
        case .payloadTruncated(let h, let available):
            guard Int(h.length) > available, available == bytes.count - VsockHeader.size else { fuzzFailure("\(error)") }
        }
        return
    }
    _ = packet.header.op.description
    guard packet.header.bytes == Array(bytes.prefix(VsockHeader.size)) else { fuzzFailure("header does not re-encode to its bytes") }
    guard packet.payload.count <= maxPayload, packet.payload.isEmpty || packet.header.op == .readWrite else {
        fuzzFailure("payload of \(packet.payload.count) bytes for \(packet.header.op)")
    }
    if packet.header.op == .readWrite {
        guard packet.payload.count == Int(packet.header.length),
              packet.bytes == Array(bytes.prefix(VsockHeader.size + packet.payload.count)) else {
            fuzzFailure("RW packet does not re-encode to its bytes")
        }
    }
}

func vsockSeeds() -> [(name: String, bytes: [UInt8])] {
    func packet(_ op: VsockOperation, port: UInt32 = 1024, guestPort: UInt32 = 5000, payload: [UInt8] = [],
                flags: UInt32 = 0, bufAlloc: UInt32 = 256 << 10, fwdCnt: UInt32 = 0, source: UInt64 = 3) -> [UInt8] {
        VsockPacket(header: VsockHeader(sourceCID: source, destinationCID: VsockCID.host, sourcePort: guestPort,
                                        destinationPort: port, op: op, flags: flags, bufAlloc: bufAlloc, fwdCnt: fwdCnt),
                    payload: payload).bytes
    }
    let connect = packet(.request)
    return [
        ("request", connect),
        ("session", connect + packet(.readWrite, payload: Array("hello\n".utf8)) + packet(.creditUpdate, fwdCnt: 6)
            + packet(.creditRequest) + packet(.shutdown, flags: VsockShutdown.both) + packet(.reset)),
        ("refused-port", packet(.request, port: 1025) + packet(.readWrite, port: 1025, payload: [1, 2, 3])),
        ("over-credit", connect + packet(.creditUpdate, bufAlloc: 4) + packet(.readWrite, payload: [UInt8](repeating: 7, count: 64))),
        ("response-unasked", packet(.response)),
        ("other-cid", packet(.request, source: 4)),
        ("unknown-op", packet(VsockOperation(rawValue: 99))),
        ("short", Array(connect.prefix(20))),
        ("truncated", Array(packet(.readWrite, payload: [1, 2, 3, 4]).dropLast(2))),
    ]
}
