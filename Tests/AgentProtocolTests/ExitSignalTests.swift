import Testing
import Glibc
@testable import AgentProtocol

/// The `exited` message names how the container's process ended, and the VMM ends
/// itself the same way: only a signal that can end a process may be named.
@Suite struct ExitSignalTests {
    @Test(arguments: [SIGHUP, SIGINT, SIGQUIT, SIGILL, SIGTRAP, SIGABRT, SIGBUS, SIGFPE, SIGKILL, SIGUSR1, SIGSEGV,
                      SIGUSR2, SIGPIPE, SIGALRM, SIGTERM, SIGSTKFLT, SIGXCPU, SIGXFSZ, SIGVTALRM, SIGPROF, SIGIO,
                      SIGPWR, SIGSYS, 32, 33, 34, 50, 64])
    func aSignalThatEndsAProcessIsHonoured(_ signal: Int32) throws {
        #expect(ExitSignal.endsProcess(signal))
        try ControlMessage(type: .exited, process: 1, signal: signal).validate()
    }

    @Test(arguments: [SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU, SIGCONT, SIGCHLD, SIGURG, SIGWINCH, 0, -1, -9, 65, 128, 255,
                      Int32.max, Int32.min])
    func aSignalThatCannotEndAProcessFailsTheMessage(_ signal: Int32) {
        #expect(!ExitSignal.endsProcess(signal))
        #expect(throws: ProtocolError.invalidControl("exited by signal \(signal), which cannot end a process")) {
            try ControlMessage(type: .exited, process: 2, signal: signal).validate()
        }
    }

    /// The numbers written out in `ExitSignal` are this platform's.
    @Test func theStopAndIgnoreSignalsAreTheHostsNumbers() {
        #expect(ExitSignal.neverEnds == [SIGCHLD, SIGCONT, SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU, SIGURG, SIGWINCH])
    }

    @Test(arguments: [-1, 256, 1000, Int32.min])
    func anExitCodeOutOf0To255FailsTheMessage(_ code: Int32) {
        #expect(throws: ProtocolError.invalidControl("exited with exit code \(code)")) {
            try ControlMessage(type: .exited, process: 1, exitCode: code).validate()
        }
        #expect(throws: Never.self) { try ControlMessage(type: .exited, process: 1, exitCode: 255).validate() }
    }
}
