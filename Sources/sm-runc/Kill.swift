import Runtime
import ArgumentParser
import Foundation
import OCIBundle

/// `sm-runc kill ID [SIGNAL]`: sends a signal (default TERM) to the container's
/// process in the guest. KILL ends the VMM process itself, which ends the guest.
struct Kill: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Send a signal to the container's process.")

    @OptionGroup var globals: GlobalOptions
    @Flag(name: [.short, .long], help: "Signal every process of the container (they all end with the microVM).")
    var all = false
    @Argument(help: "The container id.") var id: String
    @Argument(help: "The signal: a number or a name, with or without SIG (default TERM).") var signal: String = "TERM"

    func run() throws {
        let number = try Signals.parse(signal)
        let container = try ContainerLookup(root: globals.root, id: id)
        guard container.status == .created || container.status == .running || container.status == .paused else {
            // As runc 1.1: with --all a stopped container has no process left to signal,
            // which is not an error (containerd's shim sends kill --all after an exit).
            if all && container.status == .stopped { return }
            throw RuntimeError("container not running")
        }
        // Signal 0 (as runc, kill(2)): the container exists and is not stopped; nothing is sent.
        if number == 0 { return }
        if number == SIGKILL {
            try container.killVMM()
            return
        }
        _ = try ControlChannel.request("kill \(number)", socket: container.state.controlSocket)
    }
}
