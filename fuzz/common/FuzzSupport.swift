// Shared by every fuzz target (compiled into each one by scripts/fuzz.sh).
#if canImport(Glibc)
import Glibc
#endif

/// The fuzz input, read front to back. Reads past the end give zeros, so a target
/// can take its parameters from the front of any input.
struct FuzzInput {
    let bytes: [UInt8]
    private(set) var offset = 0

    init(_ data: UnsafePointer<UInt8>?, _ size: Int) {
        bytes = size > 0 && data != nil ? Array(UnsafeBufferPointer(start: data, count: size)) : []
    }

    var remaining: Int { bytes.count - offset }

    mutating func u8() -> UInt8 {
        guard offset < bytes.count else { return 0 }
        defer { offset += 1 }
        return bytes[offset]
    }
    mutating func u16() -> UInt16 { UInt16(u8()) | UInt16(u8()) << 8 }
    mutating func u32() -> UInt32 { UInt32(u16()) | UInt32(u16()) << 16 }
    mutating func u64() -> UInt64 { UInt64(u32()) | UInt64(u32()) << 32 }

    /// The next `count` bytes (fewer at the end).
    mutating func take(_ count: Int) -> [UInt8] {
        let n = max(0, min(count, remaining))
        defer { offset += n }
        return Array(bytes[offset..<offset + n])
    }

    mutating func rest() -> [UInt8] { take(remaining) }
}

/// Little-endian encoding for seeds.
struct LE {
    var bytes: [UInt8] = []
    mutating func u8(_ v: UInt8) { bytes.append(v) }
    mutating func u16(_ v: UInt16) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
    mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
    mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
    mutating func zeros(_ n: Int) { bytes += [UInt8](repeating: 0, count: n) }
    mutating func raw(_ b: [UInt8]) { bytes += b }
    mutating func cString(_ s: String) { bytes += Array(s.utf8) + [0] }
}

/// A target's oracle failed: print why and abort, so libFuzzer saves the input.
func fuzzFailure(_ message: String, file: StaticString = #file, line: UInt = #line) -> Never {
    fputs("fuzz oracle failed (\(file):\(line)): \(message)\n", stderr)
    abort()
}

/// `FUZZ_WRITE_SEEDS=DIR <target>` writes the target's seed inputs (made with the
/// project's own encoders) into DIR and exits; scripts/fuzz.sh --seeds uses it.
func writeSeedsIfAsked(_ seeds: () -> [(name: String, bytes: [UInt8])]) {
    guard let directory = getenv("FUZZ_WRITE_SEEDS").map({ String(cString: $0) }) else { return }
    for seed in seeds() {
        let path = directory + "/" + seed.name
        guard let file = fopen(path, "wb") else { fuzzFailure("cannot write \(path)") }
        _ = seed.bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, file) }
        fclose(file)
    }
    exit(0)
}

/// A fresh directory under /tmp.
func makeTemporaryDirectory(_ prefix: String) -> String {
    var template = Array("/tmp/\(prefix).XXXXXX".utf8CString)
    guard template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) != nil else {
        fuzzFailure("mkdtemp: errno \(errno)")
    }
    return String(cString: template)
}
