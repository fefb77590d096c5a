import ArgumentParser
import OCIBundle
import Hooks

/// `sm-runc delete [--force] ID`: removes a stopped (or created) container's state;
/// with --force a running one is killed first. `delete --force` of a container that
/// is already gone succeeds, as engines expect. A VMM still alive whatever the
/// status says (stopped by a signal, still ending) is killed before its state goes:
/// its guest RAM and cgroup must not outlive `delete`.
struct Delete: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Delete a container's state (and its microVM).")

    @OptionGroup var globals: GlobalOptions
    @Flag(name: [.short, .long], help: "Kill the container first if it is running.") var force = false
    @Argument(help: "The container id.") var id: String

    func run() throws {
        let container: ContainerLookup
        do {
            container = try ContainerLookup(root: globals.root, id: id)
        } catch let error as RuntimeError where error.description == "container does not exist" {
            if force { return }
            throw error
        }
        switch container.status {
        case .stopped, .created: break
        default:
            guard force else { throw RuntimeError("cannot delete container \(id) that is not stopped: \(container.status)") }
        }
        // A VMM that recorded its end may still be finishing: a moment to exit with
        // its own status first (engines have usually reaped it already).
        if container.status == .stopped { _ = container.awaitVMMExit(seconds: 2) }
        try container.killVMM()
        try Self.remove(container, reporter: globals.reporter)
    }

    /// Removes the state (unmounting bind staging first), then runs the poststop
    /// hooks; a hook's failure is a warning (runtime-spec).
    static func remove(_ container: ContainerLookup, reporter: Reporter) throws {
        // The tap and redirects in the container's netns, if the engine has not removed it yet.
        if let network = try? container.state.loadPlan().network { NetworkSetup.release(network) }
        try container.state.remove(reporter: reporter)
        if let hooks = container.record.hooks?.poststop {
            let state = try OCIJSON.encodeCompact(StateDocument(container.record, status: .stopped))
            do { try HookRunner.runAll(hooks, kind: "poststop", state: state) } catch { reporter.warning("\(error)") }
        }
    }
}
