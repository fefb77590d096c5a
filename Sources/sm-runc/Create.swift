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
        var plan = try CreateRequest(id: id, bundle: bundle, consoleSocket: consoleSocket, preserveFds: preserveFds).validated()
        plan.network = try NetworkSetup.plan(for: plan.spec) { [reporter = globals.reporter] in reporter.debug($0) }
        let state = try StateDirectory.create(root: globals.root, id: id)
        do {
            if let network = plan.network { try NetworkSetup.wire(network) }
            try state.savePlan(plan)
            SnapshotCache.makeOnFirstUse(size: plan.size) { [reporter = globals.reporter] in reporter.debug($0) }
            let pid = try VMMProcess.spawn(globals: globals, id: id,
                                           consoleSocket: plan.spec.process?.terminal == true ? consoleSocket : nil)
            if let pidFile { try writePidFile(pidFile, pid) }
        } catch {
            if let network = plan.network { NetworkSetup.release(network) }
            try? state.remove()
            throw error
        }
    }
}

/// The checks `create` and `run` make before anything is created; the plan they
/// save for the container's later steps.
struct CreateRequest {
    let id: String
    let bundle: String
    let consoleSocket: String?
    let preserveFds: Int
    /// create, run --detach: the caller will not be there to hold a terminal.
    var detached = true

    func validated() throws -> ContainerPlan {
        do { try validateContainerID(id) } catch { throw RuntimeError("\(error)") }
        let loaded: OCIBundle.Bundle
        do { loaded = try OCIBundle.Bundle.load(bundle) } catch { throw RuntimeError("\(error)") }
        guard let process = loaded.spec.process else { throw RuntimeError("config.json: process: required to run a container") }
        if process.terminal == true {
            guard consoleSocket != nil || !detached else {
                throw RuntimeError("cannot allocate tty if runc will detach without setting console socket")
            }
        } else if consoleSocket != nil {
            throw RuntimeError("cannot use console socket if runc will not detach or allocate tty")
        }
        guard preserveFds == 0 else { throw RuntimeError("--preserve-fds: host file descriptors cannot be passed into a microVM") }
        // The microVM's size from the limits and annotations: refused here when it cannot be.
        return try ContainerPlan(bundle: loaded)
    }
}

/// runc's pid file: decimal, no newline, written atomically.
func writePidFile(_ path: String, _ pid: pid_t) throws {
    let temporary = path + ".sm-runc-tmp"
    guard FileManager.default.createFile(atPath: temporary, contents: Data(String(pid).utf8)) else {
        throw RuntimeError.system("open", temporary)
    }
    guard rename(temporary, path) == 0 else { throw RuntimeError.system("rename", temporary) }
}
