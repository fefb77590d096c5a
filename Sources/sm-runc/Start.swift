import Runtime
import ArgumentParser
import OCIBundle
import Hooks

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
            Self.runPoststartHooks(root: globals.root, id: id, reporter: globals.reporter)
        case .running: throw RuntimeError("cannot start an already running container")
        case .stopped: throw RuntimeError("cannot start a container that has stopped")
        default: throw RuntimeError("cannot start a container in the \(container.status) state")
        }
    }

    /// poststart, run by the process that started the container (as runc does), not
    /// by the confined VMM; a failure is a warning and the container runs on.
    static func runPoststartHooks(root: String, id: String, reporter: Reporter) {
        guard let container = try? ContainerLookup(root: root, id: id), let hooks = container.record.hooks?.poststart,
              let state = try? OCIJSON.encodeCompact(StateDocument(container.record, status: container.status)) else { return }
        do { try HookRunner.runAll(hooks, kind: "poststart", state: state) } catch { reporter.warning("\(error)") }
    }
}
