import Runtime
import ArgumentParser
import Foundation
import OCIBundle
import CPosix

/// `sm-runc exec`: runs another process in a running container. This process (or,
/// with --detach, the one it leaves behind, whose pid goes to --pid-file) is the exec
/// proxy: its stdio, or the pty it makes for --tty, is passed to the VMM and becomes
/// the process's stdio; it forwards the signals it gets and exits with the process's
/// status, or dies by its signal, as `runc exec` does.
struct Exec: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run a process in a running container.")

    @OptionGroup var globals: GlobalOptions
    @Option(name: [.customShort("p"), .long], help: "process.json: the process to run (instead of the command).")
    var process: String?
    @Flag(name: [.short, .long], help: "Detach: return once the process started.") var detach = false
    @Option(help: "File to write the exec proxy's pid to (no newline).") var pidFile: String?
    @Option(help: "Unix socket to send the pty master to (with --tty).") var consoleSocket: String?
    @Flag(name: [.short, .long], help: "Allocate a pseudo-TTY.") var tty = false
    @Option(help: "Current working directory in the container.") var cwd: String?
    @Option(name: [.short, .long], help: "Set an environment variable (repeatable).") var env: [String] = []
    @Option(name: [.short, .long], help: "UID[:GID] to run as.") var user: String?
    @Flag(help: "Set no_new_privs for the process.") var noNewPrivs = false
    @Option(help: .hidden) var readyFd: Int32?
    @Argument(help: "The container id.") var id: String
    @Argument(parsing: .captureForPassthrough, help: "The command and its arguments.") var command: [String] = []

    func run() throws {
        let container = try ContainerLookup(root: globals.root, id: id)
        guard container.status == .running else {
            throw RuntimeError(container.status == .stopped ? "cannot exec in a stopped container" : "cannot exec in a container that is \(container.status)")
        }
        var spec = try processSpec(container)
        if spec.terminal == true && consoleSocket == nil && detach {
            throw RuntimeError("cannot allocate tty if runc will detach without setting console socket")
        }
        if detach {
            // The proxy is a process of its own that outlives this command.
            let file = container.state.path + "/exec-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).json"
            try Data(try OCIJSON.encodeCompact(spec)).write(to: URL(fileURLWithPath: file))
            defer { unlink(file) }
            let pid = try spawnProxy(processFile: file)
            if let pidFile { try writePidFile(pidFile, pid) }
            return
        }
        spec.terminal = spec.terminal ?? false
        let ready = ReadyPipe(readyFd.flatMap { fcntl($0, F_GETFD) >= 0 ? $0 : nil })
        do {
            try proxy(spec, container: container, ready: ready)
        } catch let error as RuntimeError {
            // A detached proxy that failed before the process started tells `exec --detach`.
            ready.report(.failure(error))
            throw error
        }
    }

    /// --ready-fd, the pipe `exec --detach` waits on: one report, which closes it. Its
    /// number is free after that (Dispatch's epoll fd gets it once the signal sources
    /// exist), so a later error must not write to or close it again.
    final class ReadyPipe {
        private var fd: Int32?
        init(_ fd: Int32?) { self.fd = fd }
        func report(_ result: Result<Void, Error>) {
            guard let fd else { return }
            self.fd = nil
            VMMProcess.report(fd, result)
        }
    }

    /// The process: --process's JSON, or the container's process with this command.
    func processSpec(_ container: ContainerLookup) throws -> Spec.Process {
        try ExecRequest(processFile: process, command: command, tty: tty, cwd: cwd, env: env, user: user,
                        noNewPrivs: noNewPrivs).process(in: container)
    }

    /// `sm-runc exec --ready-fd 3 --process F ID` with our stdio; waits for `ok`.
    func spawnProxy(processFile: String) throws -> pid_t {
        var arguments = ["--root", globals.root, "--log-format", globals.logFormat]
        if let log = globals.log { arguments += ["--log", log] }
        arguments += ["exec", "--process", processFile, "--ready-fd", "3"]
        if let consoleSocket { arguments += ["--console-socket", consoleSocket] }
        arguments.append(id)
        return try VMMProcess.spawnHelper(arguments: arguments, newSession: consoleSocket != nil)
    }

    /// Passes the stdio (or a pty) to the VMM and relays signals until the process ends.
    func proxy(_ spec: Spec.Process, container: ContainerLookup, ready: ReadyPipe) throws {
        signal(SIGPIPE, SIG_IGN)
        var stdio: [Int32] = [0, 1, 2]
        var ownedSlave: Int32 = -1
        var followSize: Int32?
        var saved = termios()
        var ownTerminal = false
        if spec.terminal == true {
            if let consoleSocket {
                var master: Int32 = -1
                guard cposix_open_pty(&master, &ownedSlave) == 0 else { throw RuntimeError.system("open", "/dev/ptmx") }
                defer { close(master) }
                _ = cposix_make_raw(ownedSlave)
                if let size = spec.consoleSize {
                    // process.consoleSize on the pty before the master leaves, as runc.
                    _ = cposix_set_window_size(master, UInt16(clamping: size.height), UInt16(clamping: size.width))
                }
                let socket = try connectUnix(consoleSocket)
                defer { close(socket) }
                guard cposix_send_fd(socket, master, "/dev/ptmx") == 0 else { throw RuntimeError.system("sendmsg", consoleSocket) }
                stdio = [ownedSlave, ownedSlave, ownedSlave]
                // As session leader (spawned with setsid) the pty becomes ours: resizes
                // arrive as SIGWINCH.
                if cposix_set_controlling_terminal(ownedSlave) == 0 { followSize = ownedSlave }
            } else if isatty(0) == 1, tcgetattr(0, &saved) == 0 {
                ownTerminal = true
                _ = cposix_make_raw(0)
                followSize = 0
            }
        }
        defer {
            if ownTerminal { tcsetattr(0, TCSANOW, &saved) }
            if ownedSlave >= 0 { close(ownedSlave) }
        }

        let connection = try connectUnix(container.state.controlSocket)
        defer { close(connection) }
        let line = Array(("exec " + String(decoding: try OCIJSON.encodeCompact(spec), as: UTF8.self) + "\n").utf8)
        guard line.withUnsafeBytes({ cposix_send_fds(connection, stdio, 3, $0.baseAddress, UInt($0.count)) }) == 0 else {
            throw RuntimeError.system("sendmsg", container.state.controlSocket)
        }
        let pid: String
        do {
            pid = try ControlChannel.reply(connection, path: container.state.controlSocket)
        } catch let error as RuntimeError {
            throw RuntimeError("exec failed: unable to start container process: \(error.description)", exitCode: 255)
        }
        ready.report(.success(()))
        globals.reporter.debug("exec: started as pid \(pid) in the guest")

        // Signals to us go to the process; with a terminal, SIGWINCH is a resize.
        let forwarded = [SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2] + (followSize == nil ? [SIGWINCH] : [])
        let sendLock = NSLock()
        func sendLine(_ text: String) { sendLock.withLock { _ = writeAll(connection, Array((text + "\n").utf8)) } }
        func sendSize() {
            var rows: UInt16 = 0, columns: UInt16 = 0
            if let fd = followSize, cposix_get_window_size(fd, &rows, &columns) == 0 { sendLine("resize \(rows) \(columns)") }
        }
        var sources = forwarded.map { number -> DispatchSourceSignal in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number)
            source.setEventHandler { sendLine("kill \(number)") }
            source.resume()
            return source
        }
        if followSize != nil {
            signal(SIGWINCH, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: SIGWINCH)
            source.setEventHandler { sendSize() }
            source.resume()
            sources.append(source)
            sendSize()
        }
        defer { sources.forEach { $0.cancel() } }

        guard let end = ControlChannel.readLine(connection) else {
            // The microVM ended (kill --all, the container's end, delete --force): the
            // process went with it, as runc's exec'd processes die by SIGKILL with
            // their container, so the proxy reports the same (137 to engines).
            globals.reporter.debug("exec: the container's VMM went away before the process ended")
            if ownTerminal { tcsetattr(0, TCSANOW, &saved) }
            Signals.dieLike(SIGKILL)
        }
        let words = end.split(separator: " ", maxSplits: 1).map(String.init)
        switch (words.first, words.count == 2 ? Int32(words[1]) : nil) {
        case ("exit", let code?): throw ExitCode(code)
        case ("signal", let signal?):
            if ownTerminal { tcsetattr(0, TCSANOW, &saved) }
            // The process that got it ran in the guest: a core of this proxy holds
            // nothing of it and would only pass for a host crash.
            var noCore = rlimit(rlim_cur: 0, rlim_max: 0)
            _ = setrlimit(__rlimit_resource_t(RLIMIT_CORE.rawValue), &noCore)
            Signals.dieLike(signal)
        default:
            throw RuntimeError(end.hasPrefix("error ") ? String(end.dropFirst(6)) : "exec: unexpected reply \(end.prefix(80))")
        }
    }
}
