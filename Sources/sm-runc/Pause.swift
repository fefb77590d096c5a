import Runtime
import ArgumentParser
import OCIBundle

/// `sm-runc pause`: freezes the container: its microVM's vCPU stops running guest
/// code (the guest's processes, its kernel and its clock stand still) until `resume`.
struct Pause: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Pause all processes of a container (its vCPUs).")

    @OptionGroup var globals: GlobalOptions
    @Argument(help: "The container id.") var id: String

    func run() throws {
        let container = try ContainerLookup(root: globals.root, id: id)
        guard container.status == .running || container.status == .created else {
            throw RuntimeError(container.status == .paused ? "container already paused" : "container not running")
        }
        _ = try ControlChannel.request("pause", socket: container.state.controlSocket)
    }
}

/// `sm-runc resume`: lets a paused container run on.
struct Resume: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Resume a paused container.")

    @OptionGroup var globals: GlobalOptions
    @Argument(help: "The container id.") var id: String

    func run() throws {
        let container = try ContainerLookup(root: globals.root, id: id)
        guard container.status == .paused else { throw RuntimeError("container not paused") }
        _ = try ControlChannel.request("resume", socket: container.state.controlSocket)
    }
}
