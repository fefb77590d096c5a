// FUSE request parsing (Sources/VMM/Devices/Fs: FuseRequest.swift, FuseWire.swift,
// FuseCoding.swift): the input is one message as a virtio-fs chain carries it.
// Byte 0 picks how many bytes "arrived" (the chain's readable length may exceed
// what was copied); the rest is the message. Oracles: a parsed request is
// within the limits it was parsed against.
#if canImport(Glibc)
import Glibc
#endif
@testable import VMM

let fuseParser = FuseParser()

@_cdecl("LLVMFuzzerInitialize")
public func fuzzInitialize(_ argc: UnsafeMutableRawPointer?, _ argv: UnsafeMutableRawPointer?) -> CInt {
    writeSeedsIfAsked { fuseSeeds().map { (name: $0.name, bytes: [0] + $0.bytes) } }
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var input = FuzzInput(data, size)
    let mode = input.u8()
    let message = input.rest()
    // Mostly what arrived is what was copied; else more arrived than was copied (the
    // device copies at most `maxRequest` bytes of a chain, never more than arrived).
    let arrived = mode < 200 ? message.count : message.count + Int(mode) - 199
    let limits = fuseParser.limits
    switch fuseParser.parse(message, arrivedLength: arrived) {
    case .unreadable(let why):
        guard message.count < FuseConstant.inHeaderSize else { fuzzFailure("a \(message.count)-byte message is unreadable: \(why)") }
    case .refused(let header, let error):
        guard error.errno > 0 else { fuzzFailure("refused with errno \(error.errno)") }
        _ = header.opcode.description
        _ = error.description
    case .request(let request):
        guard Int(request.header.length) == message.count, message.count == arrived else {
            fuzzFailure("accepted a message of \(message.count) bytes, \(arrived) arrived, header says \(request.header.length)")
        }
        let op = request.operation
        _ = (op.modifiesShare, op.expectsReply, op.isInitialize)
        func checkName(_ name: FuseName) {
            guard name.count >= 1, name.count <= limits.maxName, !name.bytes.contains(0), !name.bytes.contains(0x2f) else {
                fuzzFailure("name \(Array(name.bytes)) passed")
            }
            name.withCString { guard strlen($0) == name.count else { fuzzFailure("name \(name) is not NUL-terminated") } }
        }
        switch op {
        case .lookup(let n), .unlink(let n), .rmdir(let n): checkName(n)
        case .mknod(let n, _, _), .mkdir(let n, _), .create(let n, _, _), .link(_, let n): checkName(n)
        case let .symlink(n, target):
            checkName(n)
            guard !target.isEmpty, target.count < limits.maxPath, !target.contains(0) else { fuzzFailure("symlink target \(target)") }
        case let .rename(from, _, to, _): checkName(from); checkName(to)
        case .write(_, _, let data): guard data.count <= limits.maxWrite else { fuzzFailure("write of \(data.count)") }
        case .read(_, _, let size), .readdir(_, _, let size, _):
            guard Int(size) <= limits.maxWrite else { fuzzFailure("read of \(size)") }
        case let .setxattr(name, value, _):
            guard value.count <= limits.maxXattrSize, !name.isEmpty, name.count <= limits.maxXattrName else { fuzzFailure("setxattr \(name)") }
        case .getxattr(let name, _), .removexattr(let name):
            guard !name.isEmpty, name.count <= limits.maxXattrName, !name.contains(0) else { fuzzFailure("xattr name \(name)") }
        case .batchForget(let entries):
            guard entries.count <= limits.maxBatchForget else { fuzzFailure("\(entries.count) forgets") }
        default: break
        }
    }
    return 0
}
