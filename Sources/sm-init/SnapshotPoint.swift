// The agent's side of the snapshot point (the protocol and its lines are
// `AgentProtocol.SnapshotPoint`, shared with the VMM).
import AgentProtocol
import CGuest
#if canImport(Glibc)
import Glibc
#endif

extension SnapshotPoint {
    /// Whether the VMM booted this guest to be snapshotted (`sm.snapshot=1`).
    static func requested() -> Bool {
        let fd = open("/proc/cmdline", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard n > 0 else { return false }
        return buffer[0..<n].split(whereSeparator: { $0 == 0x20 || $0 == 0x0a })
            .contains { $0.elementsEqual(kernelParameter.utf8) }
    }

    /// Announces the quiescent point and blocks until the VMM's wake-up line (which
    /// a restored VMM sends; the snapshotting VMM never does), then applies it.
    /// Nothing else runs in the guest meanwhile: no vsock connection exists yet.
    static func awaitWakeUp() {
        // Everything the agent has mapped, its own executable above all, is paged in
        // and mapped now, so the snapshot holds it: after a restore the agent's code
        // (decoding `create`, mounting, forking) runs without a page fault that would
        // read the agent from its share again. mlockall populates every mapping;
        // munlockall leaves the pages mapped, only no longer pinned.
        if mlockall(MCL_CURRENT) == 0 { munlockall() } else { say("sm-init: snapshot point: mlockall: \(String(cString: strerror(errno)))") }
        let fd = open("/dev/console", O_RDWR | O_NOCTTY | O_CLOEXEC)
        guard fd >= 0 else {
            say("sm-init: snapshot point: open /dev/console: \(String(cString: strerror(errno)))")
            return
        }
        defer { close(fd) }
        // Raw input: no echo of the wake-up line, no line editing; output unchanged.
        var saved = termios()
        let haveTermios = tcgetattr(fd, &saved) == 0
        if haveTermios {
            var raw = saved
            raw.c_lflag &= ~tcflag_t(ECHO | ECHONL | ICANON | ISIG | IEXTEN)
            raw.c_iflag &= ~tcflag_t(ICRNL | INLCR | IGNCR | IXON)
            withUnsafeMutableBytes(of: &raw.c_cc) { cc in
                cc[Int(VMIN)] = 1
                cc[Int(VTIME)] = 0
            }
            _ = tcsetattr(fd, TCSANOW, &raw)
        }
        say("\(readyLine) uptime=\(uptime())")
        // In whole reads, not byte by byte: each read is a guest syscall, and the line
        // (about 100 bytes) arrives in one piece. Nothing follows it on the console.
        var line: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 256)
        reading: while line.count < maximumLine {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { break }
            for byte in chunk[0..<n] {
                if byte == 0x0a || line.count == maximumLine { break reading }
                line.append(byte)
            }
        }
        if haveTermios { _ = tcsetattr(fd, TCSANOW, &saved) }
        apply(line)
        say("\(resumedLine) uptime=\(uptime())")
    }

    /// `sm-wake <hex seed> <seconds> <nanoseconds>`: credits the seed, sets the clock.
    static func apply(_ line: [UInt8]) {
        let fields = line.split(separator: 0x20)
        guard line.starts(with: Array(wakePrefix.utf8)), fields.count == 4,
              let seed = hexBytes(fields[1]), seed.count == seedBytes,
              let seconds = Int(String(decoding: fields[2], as: UTF8.self)),
              let nanoseconds = Int(String(decoding: fields[3], as: UTF8.self)), (0..<1_000_000_000).contains(nanoseconds) else {
            say("sm-init: snapshot point: malformed wake-up line (\(line.count) bytes)")
            return
        }
        let random = open("/dev/urandom", O_WRONLY | O_CLOEXEC)
        if random >= 0 {
            if seed.withUnsafeBufferPointer({ cguest_add_entropy(random, $0.baseAddress, Int32($0.count)) }) != 0 {
                say("sm-init: snapshot point: RNDADDENTROPY: \(String(cString: strerror(errno)))")
                _ = seed.withUnsafeBytes { write(random, $0.baseAddress, $0.count) }
            }
            close(random)
        }
        var now = timespec(tv_sec: seconds, tv_nsec: nanoseconds)
        if clock_settime(CLOCK_REALTIME, &now) != 0 {
            say("sm-init: snapshot point: clock_settime: \(String(cString: strerror(errno)))")
        }
    }

    static func hexBytes(_ text: ArraySlice<UInt8>) -> [UInt8]? {
        guard text.count % 2 == 0 else { return nil }
        func nibble(_ c: UInt8) -> UInt8? {
            switch c {
            case 0x30...0x39: return c - 0x30
            case 0x61...0x66: return c - 0x61 + 10
            default: return nil
            }
        }
        var bytes: [UInt8] = []
        var i = text.startIndex
        while i < text.endIndex {
            guard let high = nibble(text[i]), let low = nibble(text[i + 1]) else { return nil }
            bytes.append(high << 4 | low)
            i += 2
        }
        return bytes
    }
}
