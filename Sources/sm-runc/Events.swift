import Runtime
import ArgumentParser
import Foundation
import OCIBundle

/// `sm-runc events`: the container's resource usage as runc's event stream: one
/// `{"type":"stats","id":…,"data":{…}}` line per --interval (once with --stats),
/// until the container stops. The figures are the VMM process's: every process of
/// the container runs inside its microVM.
struct Events: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Display container events and resource usage.")

    @OptionGroup var globals: GlobalOptions
    @Flag(help: "Print the stats once and exit.") var stats = false
    @Option(help: "Interval between stats, in seconds (runc's 5s form is accepted).") var interval: String = "5s"
    @Argument(help: "The container id.") var id: String

    struct Event: Encodable {
        struct Data: Encodable {
            struct CPU: Encodable {
                struct Usage: Encodable { let total: UInt64; let kernel: UInt64; let user: UInt64 }
                let usage: Usage
            }
            struct Memory: Encodable {
                struct Entry: Encodable { let usage: UInt64; let max: UInt64 }
                let usage: Entry
            }
            struct Pids: Encodable { let current: UInt64 }
            let cpu: CPU
            let memory: Memory
            let pids: Pids
        }
        let type: String
        let id: String
        let data: Data
    }

    func run() throws {
        let seconds = Double(interval.hasSuffix("s") ? String(interval.dropLast()) : interval) ?? 0
        guard seconds > 0 else { throw RuntimeError("events: invalid interval \(interval)") }
        var container = try ContainerLookup(root: globals.root, id: id)
        guard container.status != .stopped else { throw RuntimeError("container not running") }
        while true {
            let event = try Self.sample(container.record)
            FileHandle.standardOutput.write(Data(try OCIJSON.encodeCompact(event) + [0x0a]))
            if stats { return }
            usleep(UInt32(seconds * 1_000_000))
            container = try ContainerLookup(root: globals.root, id: id)
            if container.status == .stopped { return }
        }
    }

    /// CPU time (ns) and resident memory of the VMM, from /proc.
    static func sample(_ record: ContainerRecord) throws -> Event {
        let stat = try readWholeFile("/proc/\(record.pid)/stat")
        guard let close = stat.lastIndex(of: UInt8(ascii: ")")) else { throw RuntimeError("events: /proc/\(record.pid)/stat unreadable") }
        let fields = stat[(close + 1)...].split(separator: UInt8(ascii: " ")).map { UInt64(String(decoding: $0, as: UTF8.self)) ?? 0 }
        // fields[11], [12]: utime, stime in clock ticks; fields[21]: rss in pages.
        let ticks = UInt64(sysconf(Int32(_SC_CLK_TCK)))
        let user = fields[11] * 1_000_000_000 / ticks, kernel = fields[12] * 1_000_000_000 / ticks
        let rss = fields.count > 21 ? fields[21] * UInt64(sysconf(Int32(_SC_PAGESIZE))) : 0
        let threads = fields.count > 17 ? fields[17] : 1
        return Event(type: "stats", id: record.id, data: .init(
            cpu: .init(usage: .init(total: user + kernel, kernel: kernel, user: user)),
            memory: .init(usage: .init(usage: rss, max: rss)),
            pids: .init(current: threads)))
    }
}
