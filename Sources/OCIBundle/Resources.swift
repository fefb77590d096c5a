/// cgroup limits (config-linux.md "Control groups").
public struct Resources: Codable, Equatable, Sendable {
    /// The device allow-list, applied in order.
    public var devices: [DeviceRule]?
    public var memory: Memory?
    public var cpu: CPU?
    public var pids: Pids?
    public var blockIO: BlockIO?
    public var hugepageLimits: [HugepageLimit]?
    public var network: Network?
    public var rdma: [String: Rdma]?
    /// cgroup v2 files and values, written as is.
    public var unified: [String: String]?

    public init(
        devices: [DeviceRule]? = nil, memory: Memory? = nil, cpu: CPU? = nil, pids: Pids? = nil,
        blockIO: BlockIO? = nil, hugepageLimits: [HugepageLimit]? = nil, network: Network? = nil,
        rdma: [String: Rdma]? = nil, unified: [String: String]? = nil
    ) {
        self.devices = devices
        self.memory = memory
        self.cpu = cpu
        self.pids = pids
        self.blockIO = blockIO
        self.hugepageLimits = hugepageLimits
        self.network = network
        self.rdma = rdma
        self.unified = unified
    }
}

/// One rule of the device cgroup: allow or deny `access` ("rwm") to type/major/minor.
public struct DeviceRule: Codable, Equatable, Sendable {
    public var allow: Bool
    /// `a` (all), `c` or `b`; all when unset.
    public var type: DeviceType?
    /// Nil means all (`*`).
    public var major: Int64?
    public var minor: Int64?
    /// Letters of "rwm"; all when unset.
    public var access: String?

    public init(allow: Bool, type: DeviceType? = nil, major: Int64? = nil, minor: Int64? = nil, access: String? = nil) {
        self.allow = allow
        self.type = type
        self.major = major
        self.minor = minor
        self.access = access
    }

    enum CodingKeys: String, CodingKey { case allow, type, major, minor, access }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        allow = try c.decode(Bool.self, forKey: .allow, or: false)
        type = try c.decodeIfPresent(DeviceType.self, forKey: .type)
        major = try c.decodeIfPresent(Int64.self, forKey: .major)
        minor = try c.decodeIfPresent(Int64.self, forKey: .minor)
        access = try c.decodeIfPresent(String.self, forKey: .access)
    }
}

/// Memory limits, in bytes (-1 is unlimited).
public struct Memory: Codable, Equatable, Sendable {
    public var limit: Int64?
    public var reservation: Int64?
    /// Memory plus swap.
    public var swap: Int64?
    /// Deprecated by the spec.
    public var kernel: Int64?
    public var kernelTCP: Int64?
    public var swappiness: UInt64?
    public var disableOOMKiller: Bool?
    public var useHierarchy: Bool?
    public var checkBeforeUpdate: Bool?

    public init(
        limit: Int64? = nil, reservation: Int64? = nil, swap: Int64? = nil, kernel: Int64? = nil,
        kernelTCP: Int64? = nil, swappiness: UInt64? = nil, disableOOMKiller: Bool? = nil,
        useHierarchy: Bool? = nil, checkBeforeUpdate: Bool? = nil
    ) {
        self.limit = limit
        self.reservation = reservation
        self.swap = swap
        self.kernel = kernel
        self.kernelTCP = kernelTCP
        self.swappiness = swappiness
        self.disableOOMKiller = disableOOMKiller
        self.useHierarchy = useHierarchy
        self.checkBeforeUpdate = checkBeforeUpdate
    }
}

/// CPU limits; times in microseconds.
public struct CPU: Codable, Equatable, Sendable {
    public var shares: UInt64?
    public var quota: Int64?
    public var burst: UInt64?
    public var period: UInt64?
    public var realtimeRuntime: Int64?
    public var realtimePeriod: UInt64?
    /// cpuset lists ("0-3,7").
    public var cpus: String?
    public var mems: String?
    /// 1 for SCHED_IDLE-like weight.
    public var idle: Int64?

    public init(
        shares: UInt64? = nil, quota: Int64? = nil, burst: UInt64? = nil, period: UInt64? = nil,
        realtimeRuntime: Int64? = nil, realtimePeriod: UInt64? = nil, cpus: String? = nil, mems: String? = nil,
        idle: Int64? = nil
    ) {
        self.shares = shares
        self.quota = quota
        self.burst = burst
        self.period = period
        self.realtimeRuntime = realtimeRuntime
        self.realtimePeriod = realtimePeriod
        self.cpus = cpus
        self.mems = mems
        self.idle = idle
    }
}

/// The pids controller. The spec requires `limit`; a missing one is read as unset.
public struct Pids: Codable, Equatable, Sendable {
    /// Maximum number of tasks; 0 or -1 is unlimited.
    public var limit: Int64?

    public init(limit: Int64? = nil) { self.limit = limit }
}

/// Block I/O weights and throttles.
public struct BlockIO: Codable, Equatable, Sendable {
    public var weight: UInt16?
    public var leafWeight: UInt16?
    public var weightDevice: [WeightDevice]?
    public var throttleReadBpsDevice: [ThrottleDevice]?
    public var throttleWriteBpsDevice: [ThrottleDevice]?
    public var throttleReadIOPSDevice: [ThrottleDevice]?
    public var throttleWriteIOPSDevice: [ThrottleDevice]?

    public init(
        weight: UInt16? = nil, leafWeight: UInt16? = nil, weightDevice: [WeightDevice]? = nil,
        throttleReadBpsDevice: [ThrottleDevice]? = nil, throttleWriteBpsDevice: [ThrottleDevice]? = nil,
        throttleReadIOPSDevice: [ThrottleDevice]? = nil, throttleWriteIOPSDevice: [ThrottleDevice]? = nil
    ) {
        self.weight = weight
        self.leafWeight = leafWeight
        self.weightDevice = weightDevice
        self.throttleReadBpsDevice = throttleReadBpsDevice
        self.throttleWriteBpsDevice = throttleWriteBpsDevice
        self.throttleReadIOPSDevice = throttleReadIOPSDevice
        self.throttleWriteIOPSDevice = throttleWriteIOPSDevice
    }

    public struct WeightDevice: Codable, Equatable, Sendable {
        public var major: Int64
        public var minor: Int64
        public var weight: UInt16?
        public var leafWeight: UInt16?

        public init(major: Int64, minor: Int64, weight: UInt16? = nil, leafWeight: UInt16? = nil) {
            self.major = major
            self.minor = minor
            self.weight = weight
            self.leafWeight = leafWeight
        }

        enum CodingKeys: String, CodingKey { case major, minor, weight, leafWeight }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            major = try c.decode(Int64.self, forKey: .major, or: 0)
            minor = try c.decode(Int64.self, forKey: .minor, or: 0)
            weight = try c.decodeIfPresent(UInt16.self, forKey: .weight)
            leafWeight = try c.decodeIfPresent(UInt16.self, forKey: .leafWeight)
        }
    }

    public struct ThrottleDevice: Codable, Equatable, Sendable {
        public var major: Int64
        public var minor: Int64
        /// Bytes or operations per second.
        public var rate: UInt64

        public init(major: Int64, minor: Int64, rate: UInt64) {
            self.major = major
            self.minor = minor
            self.rate = rate
        }

        enum CodingKeys: String, CodingKey { case major, minor, rate }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            major = try c.decode(Int64.self, forKey: .major, or: 0)
            minor = try c.decode(Int64.self, forKey: .minor, or: 0)
            rate = try c.decode(UInt64.self, forKey: .rate, or: 0)
        }
    }
}

/// A hugetlb limit for one page size.
public struct HugepageLimit: Codable, Equatable, Sendable {
    /// "2MB", "1GB", ...
    public var pageSize: String
    public var limit: UInt64

    public init(pageSize: String, limit: UInt64) {
        self.pageSize = pageSize
        self.limit = limit
    }

    enum CodingKeys: String, CodingKey { case pageSize, limit }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        pageSize = try c.decode(String.self, forKey: .pageSize, or: "")
        limit = try c.decode(UInt64.self, forKey: .limit, or: 0)
    }
}

/// net_cls / net_prio settings.
public struct Network: Codable, Equatable, Sendable {
    public var classID: UInt32?
    public var priorities: [InterfacePriority]?

    public init(classID: UInt32? = nil, priorities: [InterfacePriority]? = nil) {
        self.classID = classID
        self.priorities = priorities
    }

    public struct InterfacePriority: Codable, Equatable, Sendable {
        public var name: String
        public var priority: UInt32

        public init(name: String, priority: UInt32) {
            self.name = name
            self.priority = priority
        }

        enum CodingKeys: String, CodingKey { case name, priority }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            name = try c.decode(String.self, forKey: .name, or: "")
            priority = try c.decode(UInt32.self, forKey: .priority, or: 0)
        }
    }
}

/// RDMA limits for one device.
public struct Rdma: Codable, Equatable, Sendable {
    public var hcaHandles: UInt32?
    public var hcaObjects: UInt32?

    public init(hcaHandles: UInt32? = nil, hcaObjects: UInt32? = nil) {
        self.hcaHandles = hcaHandles
        self.hcaObjects = hcaObjects
    }
}
