import OCIBundle

/// One control-file write: `value` into `file` of the cgroup in the hierarchy that
/// carries `controller` (v1), or of the v2 cgroup (controller nil).
public struct ControlWrite: Equatable, Sendable, CustomStringConvertible {
    public var controller: String?
    public var file: String
    public var value: String
    /// Skipped when the kernel does not have the file (swap accounting off, no CFQ).
    public var optional: Bool

    public init(_ controller: String?, _ file: String, _ value: String, optional: Bool = false) {
        self.controller = controller
        self.file = file
        self.value = value
        self.optional = optional
    }

    public var description: String { "\(file)=\(value)" }
}

/// `linux.resources` as control-file writes, in the order runc writes them. Pure, so
/// the v1/v2 conversions are testable without a cgroup.
public enum ResourceWrites {
    /// Devices the VMM itself needs after it has joined: runc's default allow-list
    /// (null, zero, full, random, urandom, tty, console, ptmx, pts, tun, and mknod of
    /// anything) plus /dev/kvm. Appended after the spec's rules, as runc appends its
    /// defaults, so an engine's deny-all cannot cut the VMM off.
    public static let vmmDevices: [DeviceRule] = [
        DeviceRule(allow: true, type: .char, major: nil, minor: nil, access: "m"),
        DeviceRule(allow: true, type: .block, major: nil, minor: nil, access: "m"),
        DeviceRule(allow: true, type: .char, major: 1, minor: 3, access: "rwm"),    // /dev/null
        DeviceRule(allow: true, type: .char, major: 1, minor: 8, access: "rwm"),    // /dev/random
        DeviceRule(allow: true, type: .char, major: 1, minor: 7, access: "rwm"),    // /dev/full
        DeviceRule(allow: true, type: .char, major: 5, minor: 0, access: "rwm"),    // /dev/tty
        DeviceRule(allow: true, type: .char, major: 1, minor: 5, access: "rwm"),    // /dev/zero
        DeviceRule(allow: true, type: .char, major: 1, minor: 9, access: "rwm"),    // /dev/urandom
        DeviceRule(allow: true, type: .char, major: 5, minor: 1, access: "rwm"),    // /dev/console
        DeviceRule(allow: true, type: .char, major: 136, minor: nil, access: "rwm"), // /dev/pts/*
        DeviceRule(allow: true, type: .char, major: 5, minor: 2, access: "rwm"),    // /dev/ptmx
        DeviceRule(allow: true, type: .char, major: 10, minor: 200, access: "rwm"), // /dev/net/tun
        DeviceRule(allow: true, type: .char, major: 10, minor: 232, access: "rwm"), // /dev/kvm
    ]

    /// cgroup v1: one write per setting, addressed by controller.
    public static func v1(_ resources: Resources?, vmmDevices withVMMDevices: Bool = true) -> [ControlWrite] {
        var writes: [ControlWrite] = []
        let r = resources ?? Resources()
        for rule in (r.devices ?? []) + (withVMMDevices ? vmmDevices : []) {
            writes.append(ControlWrite("devices", rule.allow ? "devices.allow" : "devices.deny", deviceLine(rule)))
        }
        if let memory = r.memory {
            if let limit = memory.limit { writes.append(ControlWrite("memory", "memory.limit_in_bytes", "\(limit)")) }
            if let reservation = memory.reservation { writes.append(ControlWrite("memory", "memory.soft_limit_in_bytes", "\(reservation)")) }
            if let swap = memory.swap { writes.append(ControlWrite("memory", "memory.memsw.limit_in_bytes", "\(swap)", optional: true)) }
            if let swappiness = memory.swappiness, swappiness <= 100 {
                writes.append(ControlWrite("memory", "memory.swappiness", "\(swappiness)"))
            }
            if memory.disableOOMKiller == true { writes.append(ControlWrite("memory", "memory.oom_control", "1")) }
        }
        if let cpu = r.cpu {
            if let shares = cpu.shares, shares != 0 { writes.append(ControlWrite("cpu", "cpu.shares", "\(shares)")) }
            // The period first: a quota is checked against the current period.
            if let period = cpu.period, period != 0 { writes.append(ControlWrite("cpu", "cpu.cfs_period_us", "\(period)")) }
            if let quota = cpu.quota, quota != 0 { writes.append(ControlWrite("cpu", "cpu.cfs_quota_us", "\(quota)")) }
            if let period = cpu.realtimePeriod, period != 0 { writes.append(ControlWrite("cpu", "cpu.rt_period_us", "\(period)")) }
            if let runtime = cpu.realtimeRuntime, runtime != 0 { writes.append(ControlWrite("cpu", "cpu.rt_runtime_us", "\(runtime)")) }
            if let cpus = cpu.cpus, !cpus.isEmpty { writes.append(ControlWrite("cpuset", "cpuset.cpus", cpus)) }
            if let mems = cpu.mems, !mems.isEmpty { writes.append(ControlWrite("cpuset", "cpuset.mems", mems)) }
        }
        if let limit = r.pids?.limit, limit != 0 {
            writes.append(ControlWrite("pids", "pids.max", limit > 0 ? "\(limit)" : "max"))
        }
        if let weight = r.blockIO?.weight, weight != 0 {
            writes.append(ControlWrite("blkio", "blkio.weight", "\(weight)", optional: true))
        }
        for limit in r.hugepageLimits ?? [] {
            writes.append(ControlWrite("hugetlb", "hugetlb.\(limit.pageSize).limit_in_bytes", "\(limit.limit)"))
        }
        if let classID = r.network?.classID { writes.append(ControlWrite("net_cls", "net_cls.classid", "\(classID)")) }
        return writes
    }

    /// cgroup v2, with runc's conversions (shares → weight, swap = memory+swap → swap
    /// alone, blkio weight → io.weight); `unified` entries last, as given. The device
    /// controller of v2 is an eBPF program: the VMM has opened its devices before it
    /// joins, so none is installed.
    public static func v2(_ resources: Resources?) throws -> [ControlWrite] {
        var writes: [ControlWrite] = []
        let r = resources ?? Resources()
        if let memory = r.memory {
            if let limit = memory.limit { writes.append(ControlWrite(nil, "memory.max", limit < 0 ? "max" : "\(limit)")) }
            if let reservation = memory.reservation { writes.append(ControlWrite(nil, "memory.low", reservation < 0 ? "max" : "\(reservation)")) }
            if let swap = memory.swap {
                let value: String
                if swap < 0 { value = "max" } else if let limit = memory.limit, limit > 0 {
                    guard swap >= limit else {
                        throw CgroupError(description: "memory+swap limit (\(swap)) should be greater than memory limit (\(limit))")
                    }
                    value = "\(swap - limit)"
                } else { value = "\(swap)" }
                writes.append(ControlWrite(nil, "memory.swap.max", value, optional: true))
            }
        }
        if let cpu = r.cpu {
            if let shares = cpu.shares, shares != 0 {
                let clamped = min(max(shares, 2), 262_144)
                writes.append(ControlWrite(nil, "cpu.weight", "\(1 + (clamped - 2) * 9999 / 262_142)"))
            }
            if cpu.quota != nil || cpu.period != nil {
                let quota = cpu.quota.map { $0 > 0 ? "\($0)" : "max" } ?? "max"
                writes.append(ControlWrite(nil, "cpu.max", "\(quota) \(cpu.period.flatMap { $0 == 0 ? nil : $0 } ?? 100_000)"))
            }
            if let cpus = cpu.cpus, !cpus.isEmpty { writes.append(ControlWrite(nil, "cpuset.cpus", cpus)) }
            if let mems = cpu.mems, !mems.isEmpty { writes.append(ControlWrite(nil, "cpuset.mems", mems)) }
        }
        if let limit = r.pids?.limit, limit != 0 {
            writes.append(ControlWrite(nil, "pids.max", limit > 0 ? "\(limit)" : "max"))
        }
        if let weight = r.blockIO?.weight, weight != 0 {
            let clamped = min(max(Int(weight), 10), 1000)
            writes.append(ControlWrite(nil, "io.weight", "default \(1 + (clamped - 10) * 9999 / 990)", optional: true))
        }
        for limit in r.hugepageLimits ?? [] {
            writes.append(ControlWrite(nil, "hugetlb.\(limit.pageSize).max", "\(limit.limit)"))
        }
        for (file, value) in (r.unified ?? [:]).sorted(by: { $0.key < $1.key }) {
            guard !file.contains("/"), file != ".", file != "..", !file.isEmpty else {
                throw CgroupError(description: "linux.resources.unified: invalid file name \"\(file)\"")
            }
            writes.append(ControlWrite(nil, file, value))
        }
        return writes
    }

    /// "c 1:3 rwm"; `a` rules and unset numbers are "*".
    static func deviceLine(_ rule: DeviceRule) -> String {
        let type = rule.type?.rawValue ?? "a"
        let major = rule.major.map(String.init) ?? "*", minor = rule.minor.map(String.init) ?? "*"
        return "\(type) \(major):\(minor) \(rule.access.flatMap { $0.isEmpty ? nil : $0 } ?? "rwm")"
    }
}
