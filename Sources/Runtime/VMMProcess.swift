import Foundation
import CPosix
import OCIBundle

/// Spawning the VMM process that `create` leaves behind: `sm-runc … vmm --ready-fd 3 ID`
/// (the container's plan is in its state directory, saved by `create`)
/// with the caller's fds 0, 1 and 2 (the container's stdio) and a pipe on fd 3 on which
/// it reports `ok` once the container is created, or `error <message>`. Nothing else
/// of ours or the caller's reaches it (engines leak fds such as containerd's ttrpc
/// socket; they are closed from fd 4 up).
package enum VMMProcess {
    package static let readyFD: Int32 = 3

    /// Spawns the VMM and waits for it to report; returns its pid. On failure it is
    /// reaped (it exits by itself once it reported the error).
    ///
    /// With `consoleSocket` (process.terminal), a pty is made here: its master goes to
    /// the socket as one SCM_RIGHTS message, its slave (raw: the guest's pty does the
    /// line discipline) becomes the VMM's fds 0, 1 and 2 and the controlling terminal
    /// of its new session, so the engine's resizes reach it as SIGWINCH.
    ///
    /// With `followTerminal` (run in a terminal), fd 0 is already a terminal: the VMM
    /// shares our process group, gets its SIGWINCH and passes the size on.
    /// `consoleSize` (process.consoleSize) is set on that pty before the master leaves,
    /// as runc does; the guest's pty follows it at start.
    /// `spawned` is called with the VMM's pid as soon as it exists, before it reports
    /// (`run` kills it from there when interrupted).
    package static func spawn(globals: RuntimeOptions, id: String, consoleSocket: String? = nil,
                      consoleSize: Box? = nil, followTerminal: Bool = false,
                      spawned: (pid_t) -> Void = { _ in }) throws -> pid_t {
        var slave: Int32 = -1
        if let consoleSocket {
            var master: Int32 = -1
            guard cposix_open_pty(&master, &slave) == 0 else { throw RuntimeError.system("open", "/dev/ptmx") }
            defer { close(master) }
            guard cposix_make_raw(slave) == 0 else {
                close(slave)
                throw RuntimeError.system("tcsetattr", "pty")
            }
            if let consoleSize {
                _ = cposix_set_window_size(master, UInt16(clamping: consoleSize.height), UInt16(clamping: consoleSize.width))
            }
            do {
                let socket = try connectUnix(consoleSocket)
                defer { close(socket) }
                guard cposix_send_fd(socket, master, "/dev/ptmx") == 0 else { throw RuntimeError.system("sendmsg", consoleSocket) }
            } catch {
                close(slave)
                throw error
            }
        }
        defer { if slave >= 0 { close(slave) } }
        var arguments = ["--root", globals.root, "--log-format", globals.logFormat]
        if let log = globals.log { arguments += ["--log", log] }
        if globals.debug { arguments.append("--debug") }
        if globals.vmmSeccompOff { arguments += ["--vmm-seccomp", "off"] }
        arguments += ["vmm", "--ready-fd", String(readyFD)]
        if slave >= 0 { arguments.append("--console") } else if followTerminal { arguments.append("--terminal") }
        arguments.append(id)
        return try spawnHelper(arguments: arguments, stdio: slave >= 0 ? slave : nil, newSession: slave >= 0,
                               what: "the VMM process", until: "the container was created", spawned: spawned)
    }

    /// Spawns `sm-runc <arguments>` (the VMM, or a detached exec proxy) with our fds
    /// 0-2 (or `stdio` on all three), the ready pipe on fd 3 and nothing else, and
    /// waits for its `ok`. On `error <message>` or an early end it is reaped.
    package static func spawnHelper(arguments: [String], stdio: Int32? = nil, newSession: Bool = false,
                            what: String = "the exec proxy", until event: String = "the process started",
                            spawned: (pid_t) -> Void = { _ in }) throws -> pid_t {
        var pipeFDs: [Int32] = [-1, -1]
        guard cposix_pipe_cloexec(&pipeFDs) == 0 else { throw RuntimeError.system("pipe2", "ready") }
        defer { close(pipeFDs[0]) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, pipeFDs[1], readyFD)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        if let stdio { for fd: Int32 in 0...2 { posix_spawn_file_actions_adddup2(&actions, stdio, fd) } }
        // Our own signal set-up (`run` ignores and forwards INT, TERM...) is not the child's.
        cposix_spawn_default_signals(&attributes)
        if newSession { cposix_spawn_setsid(&attributes) }
        cposix_spawn_closefrom(&actions, readyFD + 1)
        let argv = (["sm-runc"] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, "/proc/self/exe", &actions, &attributes, argv, environ)
        close(pipeFDs[1])
        guard rc == 0 else { throw RuntimeError.system("spawn", what, errno: rc) }
        spawned(pid)

        var reply: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while reply.count < 64 << 10 {
            let n = buffer.withUnsafeMutableBytes { read(pipeFDs[0], $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            reply += buffer[0..<n]
        }
        let text = String(decoding: reply, as: UTF8.self).trimmingCharacters(in: .newlines)
        if text == "ok" { return pid }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        if text.hasPrefix("error ") { throw RuntimeError(String(text.dropFirst(6))) }
        throw RuntimeError("\(what) ended before \(event) (wait status \(status))")
    }

    /// In the VMM: reports to `create` and closes the pipe. False when nobody read it
    /// (the creator is gone: killed, or a `run` that was interrupted).
    @discardableResult
    package static func report(_ fd: Int32, _ result: Result<Void, Error>) -> Bool {
        defer { close(fd) }
        switch result {
        case .success: return writeAll(fd, Array("ok\n".utf8))
        case .failure(let error): return writeAll(fd, Array("error \(String(describing: error).replacingOccurrences(of: "\n", with: " "))\n".utf8))
        }
    }
}
