/// The process's I/O priority (ioprio_set(2)), spec 1.2.
public struct IOPriority: Codable, Equatable, Sendable {
    public var `class`: IOPriorityClass
    /// 0 (highest) to 7.
    public var priority: Int

    public init(class: IOPriorityClass, priority: Int) {
        self.class = `class`
        self.priority = priority
    }

    enum CodingKeys: String, CodingKey { case `class`, priority }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.class = try c.decode(IOPriorityClass.self, forKey: .class, or: "")
        priority = try c.decode(Int.self, forKey: .priority, or: 0)
    }
}

public struct IOPriorityClass: OCIString {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }

    public static let realtime: Self = "IOPRIO_CLASS_RT"
    public static let bestEffort: Self = "IOPRIO_CLASS_BE"
    public static let idle: Self = "IOPRIO_CLASS_IDLE"
    public static let known: [Self] = [realtime, bestEffort, idle]
}

/// The process's scheduling attributes (sched_setattr(2)), spec 1.2.
public struct Scheduler: Codable, Equatable, Sendable {
    public var policy: SchedulerPolicy
    public var nice: Int32?
    public var priority: Int32?
    public var flags: [SchedulerFlag]?
    /// SCHED_DEADLINE parameters, in nanoseconds.
    public var runtime: UInt64?
    public var deadline: UInt64?
    public var period: UInt64?

    public init(
        policy: SchedulerPolicy, nice: Int32? = nil, priority: Int32? = nil, flags: [SchedulerFlag]? = nil,
        runtime: UInt64? = nil, deadline: UInt64? = nil, period: UInt64? = nil
    ) {
        self.policy = policy
        self.nice = nice
        self.priority = priority
        self.flags = flags
        self.runtime = runtime
        self.deadline = deadline
        self.period = period
    }

    enum CodingKeys: String, CodingKey { case policy, nice, priority, flags, runtime, deadline, period }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        policy = try c.decode(SchedulerPolicy.self, forKey: .policy, or: "")
        nice = try c.decodeIfPresent(Int32.self, forKey: .nice)
        priority = try c.decodeIfPresent(Int32.self, forKey: .priority)
        flags = try c.decodeIfPresent([SchedulerFlag].self, forKey: .flags)
        runtime = try c.decodeIfPresent(UInt64.self, forKey: .runtime)
        deadline = try c.decodeIfPresent(UInt64.self, forKey: .deadline)
        period = try c.decodeIfPresent(UInt64.self, forKey: .period)
    }
}

public struct SchedulerPolicy: OCIString {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }

    public static let other: Self = "SCHED_OTHER"
    public static let fifo: Self = "SCHED_FIFO"
    public static let roundRobin: Self = "SCHED_RR"
    public static let batch: Self = "SCHED_BATCH"
    public static let iso: Self = "SCHED_ISO"
    public static let idle: Self = "SCHED_IDLE"
    public static let deadline: Self = "SCHED_DEADLINE"
    public static let known: [Self] = [other, fifo, roundRobin, batch, iso, idle, deadline]
}

public struct SchedulerFlag: OCIString {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }

    public static let resetOnFork: Self = "SCHED_FLAG_RESET_ON_FORK"
    public static let reclaim: Self = "SCHED_FLAG_RECLAIM"
    public static let deadlineOverrun: Self = "SCHED_FLAG_DL_OVERRUN"
    public static let keepPolicy: Self = "SCHED_FLAG_KEEP_POLICY"
    public static let keepParams: Self = "SCHED_FLAG_KEEP_PARAMS"
    public static let utilClampMin: Self = "SCHED_FLAG_UTIL_CLAMP_MIN"
    public static let utilClampMax: Self = "SCHED_FLAG_UTIL_CLAMP_MAX"
    public static let known: [Self] = [resetOnFork, reclaim, deadlineOverrun, keepPolicy, keepParams, utilClampMin, utilClampMax]
}
