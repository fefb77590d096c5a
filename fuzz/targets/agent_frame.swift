// Agent frames and control messages (Sources/AgentProtocol): what the guest agent
// writes to the VMM's vsock stream. The input is the byte stream, fed to one
// FrameReader in pieces whose sizes come from the first byte; every control message
// is validated, and every accepted frame must re-encode and decode to itself.
#if canImport(Glibc)
import Glibc
#endif
import OCIBundle
@testable import AgentProtocol

@_cdecl("LLVMFuzzerInitialize")
public func fuzzInitialize(_ argc: UnsafeMutableRawPointer?, _ argv: UnsafeMutableRawPointer?) -> CInt {
    writeSeedsIfAsked(agentFrameSeeds)
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var input = FuzzInput(data, size)
    let chunk = Int(input.u8()) + 1                     // 1...256 bytes per feed
    let stream = input.rest()
    var reader = FrameReader()
    var frames: [Frame] = []
    var offset = 0
    while offset < stream.count {
        let piece = stream[offset..<min(offset + chunk, stream.count)]
        offset += piece.count
        do {
            frames += try reader.feed(piece)
        } catch {
            // A broken stream stays broken.
            guard reader.failed == error else { fuzzFailure("failed is \(String(describing: reader.failed)), threw \(error)") }
            do {
                _ = try reader.feed([1, 0, 0, 0, 1])
                fuzzFailure("a failed reader accepted more bytes")
            } catch {}
            break
        }
    }
    for frame in frames {
        if case .control(let message) = frame {
            do { try message.validate() } catch { _ = error.description; continue }
        }
        // A frame the VMM accepted encodes (when it fits) and decodes to itself.
        guard let encoded = try? frame.encoded() else { continue }
        var again = FrameReader()
        let decoded: [Frame]
        do { decoded = try again.feed(encoded) } catch { fuzzFailure("re-encoded \(frame) does not decode: \(error)") }
        guard decoded == [frame] else { fuzzFailure("\(frame) round-trips to \(decoded)") }
    }
    return 0
}

func agentFrameSeeds() -> [(name: String, bytes: [UInt8])] {
    let create = ControlMessage(type: .create, process: 1, spec: Spec.example(args: ["sh", "-c", "exit 3"]).process,
                                mounts: Spec.example().mounts, hostname: "box", rootReadonly: true,
                                maskedPaths: ["/proc/kcore"], readonlyPaths: ["/proc/sys"], state: "{}",
                                seccomp: [UInt8](repeating: 6, count: 16))
    let messages: [(String, ControlMessage)] = [
        ("hello", .hello()),
        ("create", create),
        ("created", ControlMessage(type: .created, process: 1)),
        ("started", ControlMessage(type: .started, process: 1, pid: 42)),
        ("exited-code", ControlMessage(type: .exited, process: 1, exitCode: 3)),
        ("exited-signal", ControlMessage(type: .exited, process: 2, signal: 9)),
        ("resize", ControlMessage(type: .resize, process: 1, rows: 24, columns: 80)),
        ("error", ControlMessage(type: .error, process: 1, message: "no such file")),
    ]
    var seeds: [(name: String, bytes: [UInt8])] = []
    for (name, message) in messages {
        // Chunk byte 255: fed whole in 256-byte pieces.
        seeds.append((name, [255] + (try! Frame.control(message).encoded())))
    }
    let stdout = try! Frame.data(process: 1, stream: .stdout, bytes: Array("hello\n".utf8)).encoded()
    let stderr = try! Frame.data(process: 2, stream: .stderr, bytes: [0, 255, 10]).encoded()
    seeds.append(("data", [255] + stdout + stderr))
    seeds.append(("split-stream", [2] + (try! Frame.control(.hello()).encoded()) + stdout))
    seeds.append(("empty-frame", [255, 0, 0, 0, 0]))
    seeds.append(("too-long", [255, 0xff, 0xff, 0xff, 0x7f, 1]))
    seeds.append(("bad-kind", [255, 1, 0, 0, 0, 9]))
    seeds.append(("bad-json", [255, 6, 0, 0, 0, 1] + Array("{\"ty".utf8)))
    return seeds
}
