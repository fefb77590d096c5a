#if canImport(Glibc)
import Glibc
#endif

/// A VMM process's memory, from /proc/PID/smaps (KiB), for benchmarks and tests:
/// proportional set size (each page divided among the processes that map it) and
/// resident set, in total and for the guest RAM mapping alone.
public struct MemoryUse: Sendable {
    public var pid: pid_t
    public var pss = 0
    public var rss = 0
    public var guestRAMPss = 0
    public var guestRAMRss = 0
    /// Whether a guest RAM mapping was found at all.
    public var foundGuestRAM = false
    /// Pages only this process maps (Private_Clean + Private_Dirty), outside guest RAM.
    public var vmmPrivate = 0
    /// The VMM's own memory: everything but guest RAM.
    public var vmmPss: Int { pss - guestRAMPss }

    public struct Failure: Error, CustomStringConvertible { public let description: String }

    /// Sums Pss and Rss over the mappings; the guest RAM is the mapping of a snapshot
    /// file (restored) or the anonymous mapping of the guest's size (booted).
    public static func of(_ pid: pid_t, guestRAMMiB: Int) throws -> MemoryUse {
        // Read to EOF: /proc files have no size, and a sized read stops short.
        let path = "/proc/\(pid)/smaps"
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw Failure(description: "open \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 64 << 10)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { throw Failure(description: "read \(path): \(String(cString: strerror(errno)))") }
            if n == 0 { break }
            bytes += buffer[0..<n]
        }
        let text = String(decoding: bytes, as: UTF8.self)
        var use = MemoryUse(pid: pid)
        var inGuestRAM = false
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard let key = fields.first else { continue }
            if key.contains("-") && !key.hasSuffix(":") {
                // A mapping header: range perms offset dev inode [path].
                let bounds = key.split(separator: "-").compactMap { UInt64($0, radix: 16) }
                let size = bounds.count == 2 ? bounds[1] - bounds[0] : 0
                let path = fields.count > 5 ? String(fields[5]) : ""
                inGuestRAM = path.hasSuffix(".snap") || (path.isEmpty && size == UInt64(guestRAMMiB) << 20)
                if inGuestRAM { use.foundGuestRAM = true }
            } else if key == "Pss:", fields.count > 1, let kb = Int(fields[1]) {
                use.pss += kb
                if inGuestRAM { use.guestRAMPss += kb }
            } else if key == "Private_Clean:" || key == "Private_Dirty:", fields.count > 1, let kb = Int(fields[1]) {
                if !inGuestRAM { use.vmmPrivate += kb }
            } else if key == "Rss:", fields.count > 1, let kb = Int(fields[1]) {
                use.rss += kb
                if inGuestRAM { use.guestRAMRss += kb }
            }
        }
        return use
    }
}
