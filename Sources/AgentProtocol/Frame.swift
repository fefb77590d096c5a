import OCIBundle

/// The VMM <-> agent wire format, version 1 (the contract both sides link).
///
/// Every frame: `u32 length` (little-endian, bytes after this field), `u8 kind`, body.
/// - kind 1, control: one `ControlMessage` as compact JSON (OCIBundle's encoder, no Foundation).
/// - kind 2, data: `u32 process` (the agent's process id), `u8 stream` (0 stdin,
///   1 stdout, 2 stderr), then the bytes, unframed and unencoded.
/// A frame is at most `Frame.maximumLength` bytes; anything else is a protocol error
/// and the peer is considered broken (the VMM stops a guest that sends one).
public enum Frame: Equatable, Sendable {
    case control(ControlMessage)
    case data(process: UInt32, stream: Stream, bytes: [UInt8])

    public enum Stream: UInt8, Sendable, Equatable { case stdin = 0, stdout = 1, stderr = 2 }

    /// Largest `length` accepted: 1 MiB of payload plus headers.
    public static let maximumLength = (1 << 20) + 16
    /// Data frames carry at most this much, so stdio interleaves with control messages.
    public static let maximumData = 64 << 10

    static let kindControl: UInt8 = 1
    static let kindData: UInt8 = 2

    public func encoded() throws -> [UInt8] {
        var body: [UInt8]
        switch self {
        case .control(let message):
            body = [Self.kindControl] + (try OCIJSON.encodeCompact(message))
        case let .data(process, stream, bytes):
            precondition(bytes.count <= Self.maximumData, "split stdio into frames of at most maximumData bytes")
            body = [Self.kindData]
            appendLE(process, to: &body)
            body.append(stream.rawValue)
            body += bytes
        }
        guard body.count <= Self.maximumLength else { throw ProtocolError.frameTooLong(body.count) }
        var frame: [UInt8] = []
        appendLE(UInt32(body.count), to: &frame)
        return frame + body
    }
}

public enum ProtocolError: Error, Equatable, CustomStringConvertible, Sendable {
    case frameTooLong(Int)
    case emptyFrame
    case unknownKind(UInt8)
    case truncatedData(Int)
    case unknownStream(UInt8)
    case invalidControl(String)
    case unsupportedVersion(Int)

    public var description: String {
        switch self {
        case .frameTooLong(let n): return "agent protocol: frame of \(n) bytes exceeds \(Frame.maximumLength)"
        case .emptyFrame: return "agent protocol: empty frame"
        case .unknownKind(let k): return "agent protocol: unknown frame kind \(k)"
        case .truncatedData(let n): return "agent protocol: data frame of \(n) bytes has no process/stream header"
        case .unknownStream(let s): return "agent protocol: unknown stdio stream \(s)"
        case .invalidControl(let why): return "agent protocol: invalid control message: \(why)"
        case .unsupportedVersion(let v): return "agent protocol: peer speaks version \(v), this side \(AgentProtocol.version)"
        }
    }
}

/// Splits a byte stream into frames. Bounded: it never holds more than one maximal
/// frame, and a bad length or body is an error, after which the stream is unusable.
public struct FrameReader: Sendable {
    private var buffer: [UInt8] = []
    private var start = 0
    public private(set) var failed: ProtocolError?

    public init() {}

    /// Appends bytes and returns every complete frame.
    public mutating func feed(_ bytes: some Sequence<UInt8>) throws(ProtocolError) -> [Frame] {
        if let failed { throw failed }
        buffer.append(contentsOf: bytes)
        var frames: [Frame] = []
        do throws(ProtocolError) {
            while buffer.count - start >= 4 {
                let length = Int(readLE32(buffer, start))
                guard length > 0 else { throw .emptyFrame }
                guard length <= Frame.maximumLength else { throw .frameTooLong(length) }
                guard buffer.count - start - 4 >= length else { break }
                frames.append(try Self.parse(buffer[(start + 4)..<(start + 4 + length)]))
                start += 4 + length
            }
        } catch {
            failed = error
            buffer = []
            start = 0
            throw error
        }
        if start > 0 && start * 2 >= buffer.count {   // compact what was consumed
            buffer.removeFirst(start)
            start = 0
        }
        return frames
    }

    static func parse(_ body: ArraySlice<UInt8>) throws(ProtocolError) -> Frame {
        let kind = body[body.startIndex]
        let rest = body.dropFirst()
        switch kind {
        case Frame.kindControl:
            do {
                return .control(try OCIJSON.decode(ControlMessage.self, from: Array(rest), file: "agent message"))
            } catch {
                throw .invalidControl(error.description)
            }
        case Frame.kindData:
            guard rest.count >= 5 else { throw .truncatedData(rest.count) }
            let process = readLE32(Array(rest.prefix(4)), 0)
            let streamByte = rest[rest.startIndex + 4]
            guard let stream = Frame.Stream(rawValue: streamByte) else { throw .unknownStream(streamByte) }
            return .data(process: process, stream: stream, bytes: Array(rest.dropFirst(5)))
        default:
            throw .unknownKind(kind)
        }
    }
}

func appendLE(_ value: UInt32, to bytes: inout [UInt8]) {
    for i in 0..<4 { bytes.append(UInt8(truncatingIfNeeded: value >> (8 * UInt32(i)))) }
}

func readLE32(_ bytes: [UInt8], _ at: Int) -> UInt32 {
    (0..<4).reduce(0) { $0 | UInt32(bytes[at + $1]) << (8 * UInt32($1)) }
}
