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

/// `sm-runc update`: resources of a running container. A microVM's memory and vCPUs
/// are fixed when it boots (no balloon or hotplug yet), so limits are refused with a
/// clear error rather than silently ignored; an empty update succeeds.
struct Update: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Update a container's resource limits.")

    @OptionGroup var globals: GlobalOptions
    @Option(name: [.short, .long], help: "resources.json ('-' for stdin).") var resources: String?
    @Option var memory: String?
    @Option var memorySwap: String?
    @Option var memoryReservation: String?
    @Option var kernelMemory: String?
    @Option var cpuShares: String?
    @Option var cpuQuota: String?
    @Option var cpuPeriod: String?
    @Option var cpusetCpus: String?
    @Option var cpusetMems: String?
    @Option var pidsLimit: String?
    @Option var blkioWeight: String?
    @Argument(help: "The container id.") var id: String

    func run() throws {
        let container = try ContainerLookup(root: globals.root, id: id)
        guard container.status != .stopped else { throw RuntimeError("container not running") }
        var asked: [String] = []
        if let resources {
            let bytes = resources == "-" ? Array(FileHandle.standardInput.readDataToEndOfFile()) : try readWholeFile(resources)
            let parsed = try OCIJSON.decode(Resources.self, from: bytes, file: resources)
            if parsed != Resources() { asked.append("--resources") }
        }
        let flags: [(String, String?)] = [("--memory", memory), ("--memory-swap", memorySwap), ("--memory-reservation", memoryReservation),
                                          ("--kernel-memory", kernelMemory), ("--cpu-shares", cpuShares), ("--cpu-quota", cpuQuota),
                                          ("--cpu-period", cpuPeriod), ("--cpuset-cpus", cpusetCpus), ("--cpuset-mems", cpusetMems),
                                          ("--pids-limit", pidsLimit), ("--blkio-weight", blkioWeight)]
        asked += flags.compactMap { $0.1 == nil ? nil : $0.0 }
        guard asked.isEmpty else {
            throw RuntimeError("update \(asked.joined(separator: ", ")): the resources of a running microVM cannot be changed yet (its memory and vCPUs are fixed at boot)")
        }
    }
}
