import Foundation
import OCIBundle

/// A container as the commands see it: its directory, record and current status.
struct ContainerLookup {
    let state: StateDirectory
    let record: ContainerRecord
    let status: ContainerStatus

    init(root: String, id: String) throws {
        state = try StateDirectory.existing(root: root, id: id)
        record = try state.load()
        status = state.status(of: record)
    }

    /// Waits (bounded) for the VMM process to be gone after it was told to end.
    func awaitVMMExit(seconds: Double = 10) -> Bool {
        let deadline = Date(timeIntervalSinceNow: seconds)
        while Date() < deadline {
            if ProcessIdentity.startTime(of: record.pid) != record.pidStartTime { return true }
            usleep(20_000)
        }
        return false
    }

    /// SIGKILL to the VMM process: the guest and everything in it end at once.
    func killVMM() throws {
        guard ProcessIdentity.startTime(of: record.pid) == record.pidStartTime else { return }
        guard kill(record.pid, SIGKILL) == 0 || errno == ESRCH else { throw RuntimeError.system("kill", String(record.pid)) }
        guard awaitVMMExit() else { throw RuntimeError("the VMM process \(record.pid) did not exit after SIGKILL") }
    }
}
