// Runs OCI lifecycle hooks: the program gets the container's state JSON on stdin and
// must exit 0 within its timeout. Used on the host by sm-runc (prestart,
// createRuntime, poststart, poststop) and in the guest by the agent, chrooted into
// the container's root (createContainer, startContainer). No Foundation: it is
// linked into the static agent.
import OCIBundle
import CPosix
#if canImport(Glibc)
import Glibc
#endif

public enum HookRunner {
    /// What went wrong, in runc's words: `error running <kind> hook #<n>: <reason>`.
    public struct Failure: Error, CustomStringConvertible, Equatable {
        public let description: String
    }

    /// Output kept from a hook for the error message.
    static let outputLimit = 4096

    /// Runs every hook of `kind` in order; the first failure stops the rest.
    public static func runAll(_ hooks: [Hook]?, kind: String, state: [UInt8], root: String? = nil) throws(Failure) {
        for (index, hook) in (hooks ?? []).enumerated() {
            do {
                try run(hook, state: state, root: root)
            } catch {
                throw Failure(description: "error running \(kind) hook #\(index): \(error.description)")
            }
        }
    }

    /// Runs one hook; with `root`, inside that directory as its root (chroot).
    public static func run(_ hook: Hook, state: [UInt8], root: String? = nil) throws(Failure) {
        func failure(_ what: String, _ code: Int32 = errno) -> Failure {
            Failure(description: "\(what): \(String(cString: strerror(code)))")
        }
        // stdin is a socket pair, not a pipe: the state is sent with MSG_NOSIGNAL, so a
        // hook that exits without reading it gives EPIPE here, never SIGPIPE.
        var input: [Int32] = [-1, -1], output: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &input) == 0 else {
            throw failure("socketpair")
        }
        guard cposix_pipe_cloexec(&output) == 0 else {
            close(input[0]); close(input[1])
            throw failure("pipe")
        }
        let argv = ((hook.args?.isEmpty == false ? hook.args! : [hook.path]).map { strdup($0) }) + [nil]
        // Without `env` a hook inherits the runtime's environment, as under runc.
        let environment = hook.env ?? inheritedEnvironment()
        let envp = environment.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) }; envp.forEach { free($0) } }

        let pid: pid_t
        if let root {
            // In the guest agent (single-threaded): fork, enter the root, exec.
            guard let rootC = strdup(root), let pathC = strdup(hook.path) else { throw failure("strdup") }
            defer { free(rootC); free(pathC) }
            pid = fork()
            if pid == 0 {
                dup2(input[0], 0); dup2(output[1], 1); dup2(output[1], 2)
                if chroot(rootC) == 0, chdir("/") == 0 { execve(pathC, argv, envp) }
                _exit(127)
            }
        } else {
            var actions = posix_spawn_file_actions_t()
            posix_spawn_file_actions_init(&actions)
            defer { posix_spawn_file_actions_destroy(&actions) }
            posix_spawn_file_actions_adddup2(&actions, input[0], 0)
            posix_spawn_file_actions_adddup2(&actions, output[1], 1)
            posix_spawn_file_actions_adddup2(&actions, output[1], 2)
            var spawned: pid_t = 0
            let rc = posix_spawn(&spawned, hook.path, &actions, nil, argv, envp)
            if rc != 0 {
                close(input[0]); close(input[1]); close(output[0]); close(output[1])
                throw failure("exec \(hook.path)", rc)
            }
            pid = spawned
        }
        close(input[0]); close(output[1])
        _ = fcntl(output[0], F_SETFL, O_NONBLOCK)
        guard pid > 0 else {
            close(input[1]); close(output[0])
            throw failure("fork")
        }
        sendState(state, to: input[1])
        close(input[1])

        var captured: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        var outputOpen = true
        let deadline = hook.timeout.map { monotonicMilliseconds() + Int64($0) * 1000 }
        var status: Int32 = 0
        while true {
            let reaped = waitpid(pid, &status, WNOHANG)
            if reaped == pid && !outputOpen { break }
            if reaped == pid {
                // Drain what is left, then stop.
                while true {
                    let n = buffer.withUnsafeMutableBytes { read(output[0], $0.baseAddress, $0.count) }
                    if n <= 0 { break }
                    if captured.count < outputLimit { captured += buffer[0..<min(n, outputLimit - captured.count)] }
                }
                break
            }
            if let deadline, monotonicMilliseconds() > deadline {
                kill(pid, SIGKILL)
                while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
                close(output[0])
                throw Failure(description: "timeout after \(hook.timeout ?? 0)s")
            }
            if outputOpen {
                var fds = [pollfd(fd: output[0], events: Int16(POLLIN), revents: 0)]
                if poll(&fds, 1, 20) > 0 {
                    let n = buffer.withUnsafeMutableBytes { read(output[0], $0.baseAddress, $0.count) }
                    if n > 0 {
                        if captured.count < outputLimit { captured += buffer[0..<min(n, outputLimit - captured.count)] }
                    } else if n == 0 || (errno != EINTR && errno != EAGAIN) {
                        outputOpen = false
                    }
                }
            } else {
                usleep(10_000)
            }
        }
        close(output[0])
        let text = String(decoding: captured, as: UTF8.self)
        let suffix = text.isEmpty ? "" : ", output: \(text)"
        if status & 0x7f == 0 {
            let code = (status >> 8) & 0xff
            if code != 0 { throw Failure(description: "exit status \(code)\(suffix)") }
        } else {
            throw Failure(description: "signal: \(status & 0x7f)\(suffix)")
        }
    }

    /// Offers the state on the hook's stdin (a socket): what fits its buffer, without
    /// blocking (a hook that does not read it is not waited on) and with MSG_NOSIGNAL
    /// (a hook that already exited gives EPIPE, never SIGPIPE). Returns send's result.
    @discardableResult
    static func sendState(_ state: [UInt8], to socket: Int32) -> Int {
        _ = fcntl(socket, F_SETFL, O_NONBLOCK)
        return state.withUnsafeBytes { send(socket, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }

    static func inheritedEnvironment() -> [String] {
        var result: [String] = []
        var entry = environ
        while let pointer = entry.pointee {
            result.append(String(cString: pointer))
            entry += 1
        }
        return result
    }

    static func monotonicMilliseconds() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return Int64(now.tv_sec) * 1000 + Int64(now.tv_nsec) / 1_000_000
    }
}
