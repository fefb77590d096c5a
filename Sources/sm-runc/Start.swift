import ArgumentParser
import OCIBundle

/// `sm-runc start`: runs the created container's process in its microVM.
struct Start: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the process of a created container.")

    @OptionGroup var globals: GlobalOptions
    @Argument(help: "The container id.") var id: String

    func run() throws {
        let container = try ContainerLookup(root: globals.root, id: id)
        switch container.status {
        case .created:
            _ = try ControlChannel.request("start", socket: container.state.controlSocket)
        case .running: throw RuntimeError("cannot start an already running container")
        case .stopped: throw RuntimeError("cannot start a container that has stopped")
        default: throw RuntimeError("cannot start a container in the \(container.status) state")
        }
    }
}
