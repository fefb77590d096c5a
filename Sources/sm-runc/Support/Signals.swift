import Runtime
import Foundation
import AgentProtocol

/// Signal names as `kill` accepts them: a number, or a name with or without SIG.
enum Signals {
    static let names: [String: Int32] = [
        "HUP": SIGHUP, "INT": SIGINT, "QUIT": SIGQUIT, "ILL": SIGILL, "TRAP": SIGTRAP, "ABRT": SIGABRT,
        "IOT": SIGIOT, "BUS": SIGBUS, "FPE": SIGFPE, "KILL": SIGKILL, "USR1": SIGUSR1, "SEGV": SIGSEGV,
        "USR2": SIGUSR2, "PIPE": SIGPIPE, "ALRM": SIGALRM, "TERM": SIGTERM, "STKFLT": SIGSTKFLT,
        "CHLD": SIGCHLD, "CONT": SIGCONT, "STOP": SIGSTOP, "TSTP": SIGTSTP, "TTIN": SIGTTIN, "TTOU": SIGTTOU,
        "URG": SIGURG, "XCPU": SIGXCPU, "XFSZ": SIGXFSZ, "VTALRM": SIGVTALRM, "PROF": SIGPROF,
        "WINCH": SIGWINCH, "IO": SIGIO, "POLL": SIGPOLL, "PWR": SIGPWR, "SYS": SIGSYS,
    ]

    static func parse(_ text: String) throws -> Int32 {
        if let number = Int32(text) {
            // 0, as kill(2): no signal, only whether the container can be signalled.
            guard number >= 0, number < 65 else { throw RuntimeError("invalid signal: \(text)") }
            return number
        }
        var name = text.uppercased()
        if name.hasPrefix("SIG") { name.removeFirst(3) }
        if name.hasPrefix("RTMIN") || name.hasPrefix("RTMAX") {
            let base = name.hasPrefix("RTMIN") ? 34 : 64
            let offset = name.dropFirst(5)
            if offset.isEmpty { return Int32(base) }
            if let n = Int32(offset), (base == 34 ? n > 0 : n < 0), base + Int(n) >= 34, base + Int(n) <= 64 { return Int32(base) + n }
        }
        guard let number = names[name] else { throw RuntimeError("unknown signal \"\(text)\"") }
        return number
    }

    /// Ends this process the way `signal` ended the container's process, so whoever
    /// waits on us sees the same wait status; falls back to exit(128 + signal). Only
    /// a signal that ends a process (`ExitSignal`, checked where the agent's message
    /// arrives) is raised: any other (a stop) is a failure, exit 255.
    static func dieLike(_ signal: Int32) -> Never {
        guard ExitSignal.endsProcess(signal) else { exit(255) }
        Foundation.signal(signal, SIG_DFL)
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, signal)
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
        raise(signal)
        exit(128 + signal)
    }
}
