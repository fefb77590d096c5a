import Runtime
import ArgumentParser
import Foundation
import OCIBundle

/// `sm-runc create`: boots the bundle's microVM up to the point where the container
/// exists (root and mounts ready, process not started) and exits 0 then, leaving the
/// VMM process (the pid in --pid-file, a child of the caller) to wait for `start`.
struct Create: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Create a container (boot its microVM, do not start the process).")

    @OptionGroup var globals: GlobalOptions
    @Option(name: [.customShort("b"), .long], help: "Path to the bundle (default: the current directory).")
    var bundle: String = "."
    @Option(help: "File to write the VMM process's pid to (no newline).") var pidFile: String?
    @Option(help: "Unix socket to send the pty master to (process.terminal).") var consoleSocket: String?
    @Flag(help: "Accepted; there is no pivot_root on the host.") var noPivot = false
    @Flag(help: "Accepted; the guest has its own keyrings.") var noNewKeyring = false
    @Option(help: "Accepted; host fds cannot be passed into a VM (must be 0).") var preserveFds: Int = 0
    @Argument(help: "The container id.") var id: String

    func run() throws {
        let plan = try CreateRequest(id: id, bundle: bundle, consoleSocket: consoleSocket, preserveFds: preserveFds)
            .validated { [reporter = globals.reporter] in reporter.debug($0) }
        let state = try StateDirectory.create(root: globals.root, id: id)
        do {
            if let network = plan.network { try NetworkSetup.wire(network) }
            try state.savePlan(plan)
            SnapshotCache.makeOnFirstUse(plan) { [reporter = globals.reporter] in reporter.debug($0) }
            let pid = try VMMProcess.spawn(globals: globals.runtime, id: id,
                                           consoleSocket: plan.spec.process?.terminal == true ? consoleSocket : nil,
                                           consoleSize: plan.spec.process?.consoleSize)
            if let pidFile { try writePidFile(pidFile, pid) }
        } catch {
            if let network = plan.network { NetworkSetup.release(network) }
            try? state.remove()
            throw error
        }
    }
}
