import Runtime
import ArgumentParser

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
        try ContainerLookup.delete(root: globals.root, id: id, force: force, reporter: globals.reporter)
    }
}
