import OCIBundle

/// One control message. A flat envelope (type plus the fields that type uses) keeps the
/// JSON readable in logs and lets either side ignore fields it does not know.
///
/// | type | direction | fields |
/// | --- | --- | --- |
/// | hello | both, first: the VMM's on connection, the agent's in one write with its answer to create | version |
/// | create | VMM -> agent | process (id), spec (OCI process), network (none: `lo` only), mounts, hostname, domainname, sysctl, rootReadonly, maskedPaths, readonlyPaths, hooks (createContainer, startContainer), state (JSON for hooks) |
/// | created | agent -> VMM | process: the root and mounts are ready, the process not yet started |
/// | start | VMM -> agent | process: run the created process |
/// | exec | VMM -> agent | process (a new id > 1), spec: run another process in the running container |
/// | started | agent -> VMM | process, pid (in the guest) |
/// | signal | VMM -> agent | process, signal |
/// | resize | VMM -> agent | process, rows, columns |
/// | closeStdin | VMM -> agent | process |
/// | exited | agent -> VMM | process, exitCode (0-255) or signal (one that ends a process: `ExitSignal`) |
/// | error | both | process (optional), message |
public struct ControlMessage: Codable, Equatable, Sendable {
    public struct Kind: RawRepresentable, Codable, Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public init(from decoder: any Decoder) throws { rawValue = try decoder.singleValueContainer().decode(String.self) }
        public func encode(to encoder: any Encoder) throws {
            var container = encoder.singleValueContainer()
            try container.encode(rawValue)
        }
        public var description: String { rawValue }

        public static let hello = Kind(rawValue: "hello")
        public static let create = Kind(rawValue: "create")
        public static let created = Kind(rawValue: "created")
        public static let start = Kind(rawValue: "start")
        public static let exec = Kind(rawValue: "exec")
        public static let started = Kind(rawValue: "started")
        public static let signal = Kind(rawValue: "signal")
        public static let resize = Kind(rawValue: "resize")
        public static let closeStdin = Kind(rawValue: "closeStdin")
        public static let exited = Kind(rawValue: "exited")
        public static let error = Kind(rawValue: "error")
    }

    public var type: Kind
    public var version: Int?
    public var process: UInt32?
    public var spec: Spec.Process?
    /// With `create`: the container's mounts (config.json order; bind sources already
    /// rewritten by the host to paths in the guest) and hostname.
    public var mounts: [Mount]?
    public var hostname: String?
    /// With `create`: `domainname` (setdomainname) and `linux.sysctl` (written to the
    /// guest kernel's /proc/sys; the host checked them as runc does).
    public var domainname: String?
    public var sysctl: [String: String]?
    /// With `create`: `root.readonly` (the rootfs is mounted read-only in the guest).
    public var rootReadonly: Bool?
    /// With `create`: `linux.maskedPaths` and `linux.readonlyPaths`.
    public var maskedPaths: [String]?
    public var readonlyPaths: [String]?
    /// With `create`: the hooks the agent runs in the container (createContainer,
    /// startContainer) and the state document they get on stdin.
    public var hooks: Hooks?
    public var state: String?
    /// With `create`: `linux.seccomp` compiled by the host to a BPF program (struct
    /// sock_filter entries, 8 bytes each), which the agent loads before exec.
    public var seccomp: [UInt8]?
    /// With `create`: `linux.devices`, made in the container's /dev after the
    /// default ones (as runc does).
    public var devices: [Device]?
    /// With `create`: the guest's `eth0` (nil: the container has `lo` only).
    public var network: GuestNetwork?
    public var pid: Int32?
    public var signal: Int32?
    public var rows: UInt16?
    public var columns: UInt16?
    public var exitCode: Int32?
    public var message: String?

    public init(type: Kind, version: Int? = nil, process: UInt32? = nil, spec: Spec.Process? = nil,
                mounts: [Mount]? = nil, hostname: String? = nil, rootReadonly: Bool? = nil,
                maskedPaths: [String]? = nil, readonlyPaths: [String]? = nil, hooks: Hooks? = nil, state: String? = nil,
                seccomp: [UInt8]? = nil, devices: [Device]? = nil, network: GuestNetwork? = nil,
                domainname: String? = nil, sysctl: [String: String]? = nil,
                pid: Int32? = nil,
                signal: Int32? = nil, rows: UInt16? = nil, columns: UInt16? = nil, exitCode: Int32? = nil, message: String? = nil) {
        self.type = type
        self.version = version
        self.process = process
        self.spec = spec
        self.mounts = mounts
        self.hostname = hostname
        self.rootReadonly = rootReadonly
        self.maskedPaths = maskedPaths
        self.readonlyPaths = readonlyPaths
        self.hooks = hooks
        self.state = state
        self.seccomp = seccomp
        self.devices = devices
        self.network = network
        self.domainname = domainname
        self.sysctl = sysctl
        self.pid = pid
        self.signal = signal
        self.rows = rows
        self.columns = columns
        self.exitCode = exitCode
        self.message = message
    }

    public static func hello() -> ControlMessage { ControlMessage(type: .hello, version: AgentProtocol.version) }

    /// Checks that a message carries what its type needs. Unknown types are refused:
    /// the version handshake makes them a peer bug, not an extension.
    public func validate() throws(ProtocolError) {
        func need(_ present: Bool, _ field: String) throws(ProtocolError) {
            if !present { throw .invalidControl("\(type) without \(field)") }
        }
        switch type {
        case .hello:
            try need(version != nil, "version")
            if version != AgentProtocol.version { throw .unsupportedVersion(version!) }
        case .create:
            try need(process != nil, "process"); try need(spec != nil, "spec")
            if let program = seccomp, program.isEmpty || program.count % 8 != 0 || program.count > 4096 * 8 {
                throw .invalidControl("create with a seccomp program of \(program.count) bytes")
            }
            if let network, network.addresses.count > 64 || network.routes.count > 256 || !(68...65535).contains(network.mtu) {
                throw .invalidControl("create with a network of \(network.addresses.count) addresses, \(network.routes.count) routes, MTU \(network.mtu)")
            }
        case .created, .start: try need(process != nil, "process")
        case .exec: try need((process ?? 0) > 1, "process > 1"); try need(spec != nil, "spec")
        case .started: try need(process != nil, "process"); try need(pid != nil, "pid")
        case .signal: try need(process != nil, "process"); try need(signal != nil, "signal")
        case .resize: try need(process != nil, "process"); try need(rows != nil && columns != nil, "rows and columns")
        case .closeStdin: try need(process != nil, "process")
        case .exited:
            try need(process != nil, "process"); try need((exitCode != nil) != (signal != nil), "exactly one of exitCode, signal")
            if let exitCode, !(0...255).contains(exitCode) { throw .invalidControl("exited with exit code \(exitCode)") }
            if let signal, !ExitSignal.endsProcess(signal) {
                throw .invalidControl("exited by signal \(signal), which cannot end a process")
            }
        case .error: try need(message != nil, "message")
        default: throw .invalidControl("unknown type \"\(type)\"")
        }
    }
}

/// The signals that can have ended a process: those whose default action terminates
/// it (with or without a core, signal(7)), 1 to 64 but for SIGCHLD, SIGCONT, SIGSTOP,
/// SIGTSTP, SIGTTIN, SIGTTOU, SIGURG and SIGWINCH (ignore, stop, continue). An
/// `exited` message may carry only these, since the VMM ends itself by the same
/// signal so that whoever waits on it sees the container's status: a guest that
/// names SIGSTOP would otherwise stop the VMM and keep it, its RAM and its cgroup
/// alive. Any other signal fails the message, and the container's end is then a
/// failure (exit 255). The numbers are Linux's (x86_64 and generic), written out:
/// this module links into the static agent without the host's C headers.
public enum ExitSignal {
    static let neverEnds: Set<Int32> = [
        17,     // SIGCHLD: ignored
        18,     // SIGCONT: continues
        19,     // SIGSTOP
        20,     // SIGTSTP
        21,     // SIGTTIN
        22,     // SIGTTOU
        23,     // SIGURG: ignored
        28,     // SIGWINCH: ignored
    ]

    /// Whether `signal` ends a process by its default action.
    public static func endsProcess(_ signal: Int32) -> Bool {
        (1...64).contains(signal) && !neverEnds.contains(signal)
    }
}
