import ArgumentParser
import Foundation
import OCIBundle
import CPosix

/// `sm-runc run`: create and start in one go. In the foreground (the default) this
/// process is the VMM: it relays the process's stdio, forwards the signals it gets,
/// and exits with the process's status (128+signal when it was killed), as `runc run`
/// does. `--detach` is `create` then `start`: the VMM process stays behind.
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
        let loaded = try request.validated()
        let state = try StateDirectory.create(root: globals.root, id: id)
        let terminal = loaded.spec.process?.terminal == true
        guard detach || (terminal && consoleSocket != nil) else {
            return try runInForeground(loaded, state: state, terminal: terminal)
        }
        // create + start; in the foreground with a console socket, we then wait for the
        // VMM process as `runc run` waits for the container.
        let pid: pid_t
        do {
            pid = try VMMProcess.spawn(globals: globals, bundle: loaded.path, id: id, consoleSocket: terminal ? consoleSocket : nil)
            if let pidFile { try writePidFile(pidFile, pid) }
            _ = try ControlChannel.request("start", socket: state.controlSocket)
        } catch {
            try? ContainerLookup(root: globals.root, id: id).killVMM()
            try? state.remove()
            throw error
        }
        guard !detach else { return }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        try? state.remove()
        throw ExitCode(status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f))
    }

    private func runInForeground(_ loaded: OCIBundle.Bundle, state: StateDirectory, terminal: Bool) throws {
        signal(SIGPIPE, SIG_IGN)
        // A terminal without a console socket is ours: raw while the guest's pty does
        // the line discipline, restored at the end.
        var saved = termios()
        let ownTerminal = terminal && isatty(0) == 1 && tcgetattr(0, &saved) == 0
        if ownTerminal { _ = cposix_make_raw(0) }
        defer { if ownTerminal { tcsetattr(0, TCSANOW, &saved) } }
        let reporter = globals.reporter
        let debug = globals.debug
        let host: ContainerHost
        do {
            if let pidFile { try writePidFile(pidFile, getpid()) }
            host = try ContainerHost(id: id, bundle: loaded, state: state, reporter: reporter) { bytes in
                if debug { bytes.withUnsafeBytes { _ = write(2, $0.baseAddress, $0.count) } }
            }
        } catch {
            try? state.remove()
            throw error
        }
        if ownTerminal { host.terminalSize = 0 }
        // Like `runc run`: signals sent to us go to the container's process (with a
        // terminal, SIGWINCH becomes a resize instead).
        let forwarded = [SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2] + (ownTerminal ? [] : [SIGWINCH])
        let sources = forwarded.map { number -> DispatchSourceSignal in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number)
            source.setEventHandler { try? host.kill(number) }
            source.resume()
            return source
        }
        defer { sources.forEach { $0.cancel() } }
        do {
            try host.bringUp()
            try host.start()
        } catch {
            try? host.kill(SIGKILL)
            _ = host.waitForEnd()
            try? state.remove()
            throw error
        }
        let outcome = host.waitForEnd()
        try? state.remove()
        if case .failed(let message) = outcome { throw RuntimeError("container \(id): \(message)") }
        throw ExitCode(outcome.shellStatus)
    }
}
