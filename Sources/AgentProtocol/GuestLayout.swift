/// Where things are in the guest, and the virtio-fs tags that put them there: the
/// contract between the VMM's device layout (the runtime's `SnapshotCache.configuration`)
/// and the agent, decided here once.
public enum GuestLayout {
    /// The agent's own root, shared read-only; the kernel mounts it as `/` and runs
    /// the agent from it.
    public static let agentRootTag = "sm-guest"
    /// The agent's path in its root: the kernel's `init=`.
    public static let agentPath = "/sm-init"
    /// The container's root (the bundle's rootfs) and where the agent mounts it.
    public static let rootfsTag = "rootfs"
    public static let containerRoot = "/run/container"
    /// The bind-mount sources the host staged, and where the agent mounts them
    /// (outside the container's root); a bind's source in `create` is `<this>/<n>`.
    public static let bindsTag = "binds"
    public static let bindsDirectory = "/run/sm-binds"
}
