import OCIBundle

/// What `create` (or `run`) resolved about a container, once: the validated spec and
/// the microVM's size. Kept in the state directory (`StateDirectory.savePlan`) so that
/// nothing after `create` reads the bundle's config.json again: the VMM process builds
/// the machine from it and `exec` takes the container's process from it, even once
/// config.json is deleted or changed (as runc keeps the config in its state).
struct ContainerPlan: Codable, Equatable {
    /// The bundle directory, absolute and cleaned.
    var bundle: String
    /// `root.path` resolved against the bundle directory.
    var rootfs: String
    /// config.json as decoded and validated at create.
    var spec: Spec
    /// The microVM's size from the spec's limits and annotations (`GuestSize.of`).
    var size: GuestSize
    /// The container's network as found and wired at create (`NetworkSetup`); nil:
    /// `lo` only.
    var network: ContainerNetwork?

    /// The plan for a loaded (decoded and validated) bundle: sizes the microVM, which
    /// fails for limits or annotations it cannot live with.
    init(bundle: OCIBundle.Bundle, hostCPUs: Int = GuestSize.onlineCPUs()) throws {
        self.bundle = bundle.path
        rootfs = bundle.rootfs
        spec = bundle.spec
        size = try GuestSize.of(bundle.spec, hostCPUs: hostCPUs)
    }
}
