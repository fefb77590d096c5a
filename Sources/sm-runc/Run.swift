import Runtime
import ArgumentParser
import Foundation
import OCIBundle
import CPosix

/// `sm-runc run`: create, start and (unless --detach) wait, as `runc run` does. The
/// VMM is the same process `create` leaves behind; this process stays outside it
/// (unconfined), forwards the signals it gets to the container's process, exits with
/// the process's status (128+signal when it was killed) and deletes the container.
struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Create and run a container in a microVM.")

    @OptionGroup var globals: GlobalOptions
    @Option(name: [.customShort("b"), .long], help: "Path to the bundle (default: the current directory).")
    var bundle: String = "."
    @Option(help: "File to write the pid of the process that serves the microVM to (no newline).")
    var pidFile: String?
    @Option(help: "Unix socket to send the pty master to (process.terminal).") var consoleSocket: String?
    @Flag(name: [.short, .long], help: "Detach from the container's process.") var detach = false
    @Flag(help: "Accepted; there is no pivot_root on the host.") var noPivot = false
    @Flag(help: "Accepted; the guest has its own keyrings.") var noNewKeyring = false
    @Option(help: "Accepted; host fds cannot be passed into a VM (must be 0).") var preserveFds: Int = 0
    @Argument(help: "The container id.") var id: String

    func run() throws {
        var request = CreateRequest(id: id, bundle: bundle, consoleSocket: consoleSocket, preserveFds: preserveFds)
        request.detached = detach
        let plan = try request.validated { [reporter = globals.reporter] in reporter.debug($0) }
        let terminal = plan.spec.process?.terminal == true
        // A terminal without a console socket is ours: raw while the guest's pty does
        // the line discipline (restored at the end); the VMM follows its size.
        var saved = termios()
        let ownTerminal = terminal && consoleSocket == nil && isatty(0) == 1 && tcgetattr(0, &saved) == 0
        let state = try StateDirectory.create(root: globals.root, id: id)
        // Like `runc run`: signals sent to us go to the container's process once it
        // started; before that they abort the run and leave nothing behind. With our
        // own terminal the VMM gets SIGWINCH itself (same process group) and resizes.
        let forwarded = [SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2] + (ownTerminal ? [] : [SIGWINCH])
        let restoreTerminal: @Sendable () -> Void = { [saved] in
            var saved = saved
            if ownTerminal { tcsetattr(0, TCSANOW, &saved) }
        }
        // What a run that fails or is interrupted before its process started takes away.
        let discard: @Sendable () -> Void = { [state, network = plan.network] in
            if let network { NetworkSetup.release(network) }
            try? state.remove()
        }
        let signals = RunSignals(forwarded) { [globals, id] number in
            globals.reporter.debug("run of \(id) interrupted by signal \(number) before its process started: the container is removed")
            discard()
            restoreTerminal()
        }
        defer { signals.cancel() }
        do {
            if let network = plan.network { try NetworkSetup.wire(network) }
            try state.savePlan(plan)
        } catch {
            discard()
            throw error
        }
        SnapshotCache.makeOnFirstUse(plan) { [reporter = globals.reporter] in reporter.debug($0) }
        if ownTerminal { _ = cposix_make_raw(0) }
        defer { restoreTerminal() }

        let pid: pid_t
        do {
            pid = try VMMProcess.spawn(globals: globals.runtime, id: id,
                                       consoleSocket: terminal ? consoleSocket : nil, consoleSize: plan.spec.process?.consoleSize,
                                       followTerminal: ownTerminal, spawned: signals.spawned)
            if let pidFile { try writePidFile(pidFile, pid) }
            _ = try ControlChannel.request("start", socket: state.controlSocket)
            signals.started(controlSocket: state.controlSocket)
        } catch {
            try? ContainerLookup(root: globals.root, id: id).killVMM()
            discard()
            throw error
        }
        Start.runPoststartHooks(root: globals.root, id: id, reporter: globals.reporter)
        guard !detach else { return }

        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        signals.cancel()
        if let lookup = try? ContainerLookup(root: globals.root, id: id) { try? lookup.remove(reporter: globals.reporter) }
        throw ExitCode(status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f))
    }
}
