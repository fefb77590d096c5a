import Runtime
import Foundation
import Synchronization

/// The signals `run` takes (INT, TERM, HUP, QUIT, USR1, USR2 and, without a terminal of
/// its own, WINCH), in two phases:
/// - while the container is being made (a snapshot made on first use, the VMM's boot,
///   `start`), one of them aborts the run: the VMM, if spawned, is killed and reaped,
///   `abort` removes what the run made (state directory, network wiring, the terminal
///   mode), and `run` exits 128+signal. A boot that hangs can be interrupted (Ctrl-C,
///   an engine's or a test's `timeout`) and nothing is left behind;
/// - once the process started, each goes to the container's process (`kill N` on the
///   control socket), as `runc run` forwards them.
/// The phase and the VMM's pid are read and changed under one lock, so an abort never
/// races the switch to forwarding.
final class RunSignals: Sendable {
    private enum Phase: Sendable { case creating(vmm: pid_t), started(socket: String) }
    private let phase = Mutex<Phase>(.creating(vmm: 0))
    private let abort: @Sendable (Int32) -> Void
    private nonisolated(unsafe) var sources: [DispatchSourceSignal] = []

    /// Installs the handlers. `abort(signal)` cleans up; it runs on a handler thread,
    /// after the VMM is gone, and `run` exits right after it.
    init(_ signals: [Int32], abort: @escaping @Sendable (Int32) -> Void) {
        self.abort = abort
        sources = signals.map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number)
            source.setEventHandler { [weak self] in self?.received(number) }
            source.resume()
            return source
        }
    }

    /// The VMM was spawned (`VMMProcess.spawn`'s callback): an abort from now on kills it.
    func spawned(_ pid: pid_t) { phase.withLock { $0 = .creating(vmm: pid) } }

    /// The process started: signals from now on go to it.
    func started(controlSocket: String) { phase.withLock { $0 = .started(socket: controlSocket) } }

    func cancel() { sources.forEach { $0.cancel() } }

    private func received(_ number: Int32) {
        let socket: String? = phase.withLock { current in
            switch current {
            case .started(let socket): return socket
            case .creating(let vmm):
                if vmm > 0 {
                    kill(vmm, SIGKILL)
                    var status: Int32 = 0
                    while waitpid(vmm, &status, 0) < 0 && errno == EINTR {}
                }
                abort(number)
                _exit(128 + number)
            }
        }
        if let socket { _ = try? ControlChannel.request("kill \(number)", socket: socket, timeout: 5) }
    }
}
