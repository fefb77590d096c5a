import AgentProtocol
import OCIBundle
import VMM

/// What `create` (or `run`) resolved about a container, once, and kept in the state
/// directory (`StateDirectory.savePlan`): nothing after `create` reads the bundle's
/// config.json again, or decides these again. The VMM process builds the machine from
/// it and stages the bind mounts it lists; `exec` takes the container's process from
/// it; the snapshot maker makes the snapshot it names; all of it holds even once
/// config.json is deleted or changed (as runc keeps the config in its state).
package struct ContainerPlan: Codable, Equatable, Sendable {
    /// The bundle directory, absolute and cleaned.
    package var bundle: String
    /// `root.path` resolved against the bundle directory.
    package var rootfs: String
    /// config.json as decoded and validated at create.
    package var spec: Spec
    /// The microVM's size from the spec's limits and annotations (`GuestSize.of`).
    package var size: GuestSize
    /// The bind mounts: sources resolved and checked, their slots in the binds share
    /// (whose mode follows: read-write with any, `BindShares.share`).
    package var binds: BindShares.Plan
    /// The machine: guest kernel, agent, command line and snapshot (`resolveMachine`).
    package var machine: Machine?
    /// The container's network as found and wired at create (`NetworkSetup`); nil:
    /// `lo` only.
    package var network: ContainerNetwork?

    package struct Machine: Codable, Equatable, Sendable {
        /// The guest kernel and the agent's root, found once (`GuestArtifacts`).
        package var kernel: String
        package var guestRoot: String
        /// The kernel command line a boot of this container's machine uses
        /// (`MachineConfiguration.commandLine`; a restored guest keeps the one its
        /// snapshot booted with, which is the same: it is in the snapshot's key).
        package var commandLine: String
        /// The snapshot this container starts from, if the cache has it (or makes it
        /// on first use); nil with `noSnapshot` saying why it boots.
        package var snapshot: SnapshotCache.Entry?
        package var noSnapshot: String?
    }

    /// The plan for a loaded (decoded and validated) bundle: sizes the microVM and
    /// checks the bind sources, which fails for what it cannot live with.
    package init(bundle: OCIBundle.Bundle, hostCPUs: Int = GuestSize.onlineCPUs()) throws {
        self.bundle = bundle.path
        rootfs = bundle.rootfs
        spec = bundle.spec
        size = try GuestSize.of(bundle.spec, hostCPUs: hostCPUs)
        binds = try BindShares.plan(mounts: bundle.spec.mounts ?? [], bundle: bundle.path)
    }

    /// Finds the guest kernel and agent and decides the command line and the snapshot
    /// (its key hashes the kernel and agent: done here once, not in the VMM again).
    package mutating func resolveMachine() throws {
        guard let guestRoot = GuestArtifacts.guestRoot() else {
            throw RuntimeError("guest root not found in \(GuestArtifacts.searchDirectories.joined(separator: ", ")): run scripts/build.sh")
        }
        let kernel = try GuestArtifacts.kernel()
        let template = SnapshotCache.template(kernel: kernel, guestRoot: guestRoot, size: size)
        var machine = Machine(kernel: kernel, guestRoot: guestRoot,
                              commandLine: try template.commandLine(hostKind: template.hostKind ?? HostKind.detect()).joined(separator: " "))
        if SnapshotCache.policy == .off {
            machine.noSnapshot = "SM_RUNC_SNAPSHOT=off"
        } else {
            do { machine.snapshot = try SnapshotCache.entry(for: template, agent: guestRoot + GuestLayout.agentPath) } catch {
                machine.noSnapshot = "\(error)"
            }
        }
        self.machine = machine
    }
}
