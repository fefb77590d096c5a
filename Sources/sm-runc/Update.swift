import Runtime
import ArgumentParser
import Foundation
import OCIBundle
import Cgroups

/// `sm-runc update`: changes the limits of the container's cgroup, which the VMM
/// process (the whole microVM) lives in. CPU (shares, quota, period, cpuset), pids
/// and the blkio weight apply to the VMM and so bound the guest. Memory is refused:
/// the guest's RAM is fixed when it boots (no balloon or hotplug yet), and a host
/// limit below it would only let the host's OOM killer end the VM. Devices and the
/// other settings runc's update does not take either are refused by name.
struct Update: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Update a container's resource limits.")

    @OptionGroup var globals: GlobalOptions
    @Option(name: [.short, .long], help: "resources.json ('-' for stdin).") var resources: String?
    @Option var memory: String?
    @Option var memorySwap: String?
    @Option var memoryReservation: String?
    @Option var kernelMemory: String?
    @Option var kernelMemoryTcp: String?
    @Option var cpuShares: String?
    @Option var cpuQuota: String?
    @Option var cpuPeriod: String?
    @Option var cpuRtPeriod: String?
    @Option var cpuRtRuntime: String?
    @Option var cpusetCpus: String?
    @Option var cpusetMems: String?
    @Option var pidsLimit: String?
    @Option var blkioWeight: String?
    @Argument(help: "The container id.") var id: String

    func run() throws {
        let container = try ContainerLookup(root: globals.root, id: id)
        guard container.status != .stopped else { throw RuntimeError("container not running") }
        var wanted = Resources()
        if let resources {
            let bytes = resources == "-" ? Array(FileHandle.standardInput.readDataToEndOfFile()) : try readWholeFile(resources)
            wanted = try OCIJSON.decode(Resources.self, from: bytes, file: resources)
        }
        try applyFlags(to: &wanted)
        try Self.refuseWhatCannotApply(wanted)
        guard wanted != Resources() else { return }
        guard let directories = container.record.cgroup else {
            throw RuntimeError("container \(id) has no cgroup to update (created before sm-runc joined cgroups)")
        }
        do {
            let cgroup = Cgroup(recorded: directories, hierarchies: try Hierarchies.current())
            try cgroup.apply(wanted, vmmDevices: false)
        } catch {
            throw RuntimeError("unable to set cgroup resources: \(error)")
        }
    }

    /// runc's flags over the JSON, as runc lets them win.
    private func applyFlags(to r: inout Resources) throws {
        func number<T: FixedWidthInteger>(_ flag: String, _ text: String?) throws -> T? {
            guard let text else { return nil }
            guard let value = T(text) else { throw RuntimeError("invalid value for \(flag): \(text)") }
            return value
        }
        if let v: Int64 = try number("--memory", memory) { r.memory = r.memory ?? Memory(); r.memory?.limit = v }
        if let v: Int64 = try number("--memory-swap", memorySwap) { r.memory = r.memory ?? Memory(); r.memory?.swap = v }
        if let v: Int64 = try number("--memory-reservation", memoryReservation) { r.memory = r.memory ?? Memory(); r.memory?.reservation = v }
        if let v: Int64 = try number("--kernel-memory", kernelMemory) { r.memory = r.memory ?? Memory(); r.memory?.kernel = v }
        if let v: Int64 = try number("--kernel-memory-tcp", kernelMemoryTcp) { r.memory = r.memory ?? Memory(); r.memory?.kernelTCP = v }
        var cpu = r.cpu ?? CPU()
        if let v: UInt64 = try number("--cpu-shares", cpuShares) { cpu.shares = v }
        if let v: Int64 = try number("--cpu-quota", cpuQuota) { cpu.quota = v }
        if let v: UInt64 = try number("--cpu-period", cpuPeriod) { cpu.period = v }
        if let v: UInt64 = try number("--cpu-rt-period", cpuRtPeriod) { cpu.realtimePeriod = v }
        if let v: Int64 = try number("--cpu-rt-runtime", cpuRtRuntime) { cpu.realtimeRuntime = v }
        if let cpusetCpus { cpu.cpus = cpusetCpus }
        if let cpusetMems { cpu.mems = cpusetMems }
        if cpu != CPU() { r.cpu = cpu }
        if let v: Int64 = try number("--pids-limit", pidsLimit) { r.pids = Pids(limit: v) }
        if let v: UInt16 = try number("--blkio-weight", blkioWeight) { r.blockIO = r.blockIO ?? BlockIO(); r.blockIO?.weight = v }
    }

    static func refuseWhatCannotApply(_ r: Resources) throws {
        if let memory = r.memory, memory != Memory() {
            throw RuntimeError("update memory: a microVM's memory is fixed when it boots (no balloon or hotplug yet); recreate the container with the new limit")
        }
        var refused: [String] = []
        if r.devices != nil { refused.append("devices") }
        if r.hugepageLimits != nil { refused.append("hugepageLimits") }
        if r.network != nil { refused.append("network") }
        if r.rdma != nil { refused.append("rdma") }
        if let io = r.blockIO, io.leafWeight != nil || io.weightDevice != nil || io.throttleReadBpsDevice != nil
            || io.throttleWriteBpsDevice != nil || io.throttleReadIOPSDevice != nil || io.throttleWriteIOPSDevice != nil {
            refused.append("blockIO devices")
        }
        guard refused.isEmpty else {
            throw RuntimeError("update \(refused.joined(separator: ", ")): not updatable (runc's update does not change these either)")
        }
    }
}
