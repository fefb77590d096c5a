/// The state of a container (runtime.md "State"): what `state` prints and hooks read on stdin.
public struct State: Codable, Equatable, Sendable {
    public var ociVersion: String
    public var id: String
    public var status: ContainerStatus
    /// The container process's pid on the host; required on Linux when created or running.
    public var pid: Int32?
    /// Absolute path of the bundle directory.
    public var bundle: String
    public var annotations: [String: String]?

    public init(
        ociVersion: String = Spec.version, id: String, status: ContainerStatus, pid: Int32? = nil,
        bundle: String, annotations: [String: String]? = nil
    ) {
        self.ociVersion = ociVersion
        self.id = id
        self.status = status
        self.pid = pid
        self.bundle = bundle
        self.annotations = annotations
    }
}

/// `creating`, `created`, `running`, `stopped`; `paused` is runc's addition, which engines expect.
public struct ContainerStatus: OCIString {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }

    public static let creating: Self = "creating"
    public static let created: Self = "created"
    public static let running: Self = "running"
    public static let stopped: Self = "stopped"
    public static let paused: Self = "paused"
    public static let known: [Self] = [creating, created, running, stopped, paused]
}
