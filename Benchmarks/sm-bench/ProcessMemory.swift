import Foundation

/// One VMM process's memory, from /proc/PID/smaps (kB): proportional set size (each
/// page divided among the processes that map it) and resident set, in total and for
/// the guest RAM mapping alone.
struct MemoryUse {
    var pid: pid_t
    var pss = 0
    var rss = 0
    var guestRAMPss = 0
    var guestRAMRss = 0
    /// Pages only this process maps (Private_Clean + Private_Dirty), outside guest RAM.
    var vmmPrivate = 0
    /// The VMM's own memory: everything but guest RAM.
    var vmmPss: Int { pss - guestRAMPss }

    struct Failure: Error, CustomStringConvertible { let description: String }

    /// Sums Pss and Rss over the mappings; the guest RAM is the mapping of a snapshot
    /// file (restored) or the anonymous mapping of the guest's size (booted).
    static func of(_ pid: pid_t, guestRAMMiB: Int) throws -> MemoryUse {
        // Read to EOF: /proc files have no size, and a sized read stops short.
        guard let file = FileHandle(forReadingAtPath: "/proc/\(pid)/smaps") else {
            throw Failure(description: "open /proc/\(pid)/smaps: \(String(cString: strerror(errno)))")
        }
        defer { try? file.close() }
        let text = String(decoding: file.readDataToEndOfFile(), as: UTF8.self)
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
