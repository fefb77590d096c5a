/// What the runtime supports (features.md), printed by `features`.
/// Nil everywhere means "unknown", not "unsupported".
public struct Features: Codable, Equatable, Sendable {
    public var ociVersionMin: String?
    public var ociVersionMax: String?
    public var hooks: [String]?
    public var mountOptions: [String]?
    public var linux: Linux?
    public var annotations: [String: String]?
    /// Annotations (or prefixes ending in ".") that may change the runtime's behaviour (spec 1.2).
    public var potentiallyUnsafeConfigAnnotations: [String]?

    public init(
        ociVersionMin: String? = nil, ociVersionMax: String? = nil, hooks: [String]? = nil,
        mountOptions: [String]? = nil, linux: Linux? = nil, annotations: [String: String]? = nil,
        potentiallyUnsafeConfigAnnotations: [String]? = nil
    ) {
        self.ociVersionMin = ociVersionMin
        self.ociVersionMax = ociVersionMax
        self.hooks = hooks
        self.mountOptions = mountOptions
        self.linux = linux
        self.annotations = annotations
        self.potentiallyUnsafeConfigAnnotations = potentiallyUnsafeConfigAnnotations
    }

    public struct Linux: Codable, Equatable, Sendable {
        public var namespaces: [NamespaceType]?
        public var capabilities: [Capability]?
        public var cgroup: Cgroup?
        public var seccomp: Seccomp?
        public var apparmor: Toggle?
        public var selinux: Toggle?
        public var intelRdt: Toggle?
        public var mountExtensions: MountExtensions?

        public init(
            namespaces: [NamespaceType]? = nil, capabilities: [Capability]? = nil, cgroup: Cgroup? = nil,
            seccomp: Seccomp? = nil, apparmor: Toggle? = nil, selinux: Toggle? = nil, intelRdt: Toggle? = nil,
            mountExtensions: MountExtensions? = nil
        ) {
            self.namespaces = namespaces
            self.capabilities = capabilities
            self.cgroup = cgroup
            self.seccomp = seccomp
            self.apparmor = apparmor
            self.selinux = selinux
            self.intelRdt = intelRdt
            self.mountExtensions = mountExtensions
        }
    }

    /// Which cgroup support is compiled in (not what the host uses).
    public struct Cgroup: Codable, Equatable, Sendable {
        public var v1: Bool?
        public var v2: Bool?
        public var systemd: Bool?
        public var systemdUser: Bool?
        public var rdma: Bool?

        public init(v1: Bool? = nil, v2: Bool? = nil, systemd: Bool? = nil, systemdUser: Bool? = nil, rdma: Bool? = nil) {
            self.v1 = v1
            self.v2 = v2
            self.systemd = systemd
            self.systemdUser = systemdUser
            self.rdma = rdma
        }
    }

    public struct Seccomp: Codable, Equatable, Sendable {
        public var enabled: Bool?
        public var actions: [SeccompAction]?
        public var operators: [SeccompOperator]?
        public var archs: [SeccompArch]?
        public var knownFlags: [SeccompFlag]?
        /// The subset of `knownFlags` the kernel and libseccomp support.
        public var supportedFlags: [SeccompFlag]?

        public init(
            enabled: Bool? = nil, actions: [SeccompAction]? = nil, operators: [SeccompOperator]? = nil,
            archs: [SeccompArch]? = nil, knownFlags: [SeccompFlag]? = nil, supportedFlags: [SeccompFlag]? = nil
        ) {
            self.enabled = enabled
            self.actions = actions
            self.operators = operators
            self.archs = archs
            self.knownFlags = knownFlags
            self.supportedFlags = supportedFlags
        }
    }

    /// `{"enabled": true}` (apparmor, selinux, intelRdt, idmap).
    public struct Toggle: Codable, Equatable, Sendable {
        public var enabled: Bool?
        public init(enabled: Bool? = nil) { self.enabled = enabled }
    }

    public struct MountExtensions: Codable, Equatable, Sendable {
        public var idmap: Toggle?
        public init(idmap: Toggle? = nil) { self.idmap = idmap }
    }
}
