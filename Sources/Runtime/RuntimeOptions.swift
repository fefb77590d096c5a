import VMM

/// What the CLI's global flags (runc's: `--root`, `--log`, `--log-format`, `--debug`,
/// and ours) decided, as the engine needs them: to spawn the VMM process with the
/// same flags, and to log.
public struct RuntimeOptions: Sendable, Equatable {
    /// sm-runc's version: `--version`, and part of a snapshot's identity.
    public static let version = "0.1.0"

    public var root: String
    public var log: String?
    public var logFormat: String
    public var debug: Bool
    /// `--vmm-seccomp off`: the host's operator switched the VMM's confinement off.
    public var vmmSeccompOff: Bool

    /// Whether the host's operator switched the VMM's confinement off, for diagnosis:
    /// `--vmm-seccomp off` or SM_RUNC_VMM_SECCOMP=off. The only switch there is: the
    /// bundle has none (`ContainerHost.confines`).
    public var vmmConfinementOff: Bool { vmmSeccompOff || SeccompFilter.disabledByEnvironment }

    public init(root: String, log: String?, logFormat: String, debug: Bool, vmmSeccompOff: Bool) {
        self.root = root
        self.log = log
        self.logFormat = logFormat
        self.debug = debug
        self.vmmSeccompOff = vmmSeccompOff
    }
}
