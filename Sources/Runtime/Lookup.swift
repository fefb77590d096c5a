import Foundation
import OCIBundle
import Hooks

/// A container as the commands see it: its directory, record and current status.
package struct ContainerLookup {
    package let state: StateDirectory
    package let record: ContainerRecord
    package let status: ContainerStatus

    package init(root: String, id: String) throws {
        state = try StateDirectory.existing(root: root, id: id)
        record = try state.load()
        status = state.status(of: record)
    }

    /// Waits (bounded) for the VMM process to be gone after it was told to end.
    package func awaitVMMExit(seconds: Double = 10) -> Bool {
        let deadline = Date(timeIntervalSinceNow: seconds)
        while Date() < deadline {
            if ProcessIdentity.startTime(of: record.pid) != record.pidStartTime { return true }
            usleep(20_000)
        }
        return false
    }

    /// SIGKILL to the VMM process: the guest and everything in it end at once.
    package func killVMM() throws {
        guard ProcessIdentity.startTime(of: record.pid) == record.pidStartTime else { return }
        guard kill(record.pid, SIGKILL) == 0 || errno == ESRCH else { throw RuntimeError.system("kill", String(record.pid)) }
        guard awaitVMMExit() else { throw RuntimeError("the VMM process \(record.pid) did not exit after SIGKILL") }
    }

    /// `delete [--force]`: removes a stopped (or created) container's state; with
    /// `force` a running one is killed first, and a container already gone is no
    /// error (as engines expect). A VMM still alive whatever the status says (stopped
    /// by a signal, still ending) is killed before its state goes: its guest RAM and
    /// cgroup must not outlive `delete`.
    package static func delete(root: String, id: String, force: Bool, reporter: Reporter) throws {
        let container: ContainerLookup
        do {
            container = try ContainerLookup(root: root, id: id)
        } catch let error as RuntimeError where error.description == "container does not exist" {
            if force { return }
            throw error
        }
        switch container.status {
        case .stopped, .created: break
        default:
            guard force else { throw RuntimeError("cannot delete container \(id) that is not stopped: \(container.status)") }
        }
        // A VMM that recorded its end may still be finishing: a moment to exit with
        // its own status first (engines have usually reaped it already).
        if container.status == .stopped { _ = container.awaitVMMExit(seconds: 2) }
        try container.killVMM()
        try container.remove(reporter: reporter)
    }

    /// Removes the state (unmounting bind staging first), then runs the poststop
    /// hooks; a hook's failure is a warning (runtime-spec).
    package func remove(reporter: Reporter) throws {
        // The tap and redirects in the container's netns, if the engine has not removed it yet.
        if let network = try? state.loadPlan().network { NetworkSetup.release(network) }
        try state.remove(reporter: reporter)
        if let hooks = record.hooks?.poststop {
            let document = try OCIJSON.encodeCompact(StateDocument(record, status: .stopped))
            do { try HookRunner.runAll(hooks, kind: "poststop", state: document) } catch { reporter.warning("\(error)") }
        }
    }
}
