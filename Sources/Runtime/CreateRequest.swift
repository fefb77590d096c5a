import Foundation
import OCIBundle

/// The checks `create` and `run` make before anything is created; the plan they
/// save for the container's later steps.
package struct CreateRequest {
    package let id: String
    package let bundle: String
    package let consoleSocket: String?
    package let preserveFds: Int
    /// create, run --detach: the caller will not be there to hold a terminal.
    package var detached = true

    package init(id: String, bundle: String, consoleSocket: String?, preserveFds: Int, detached: Bool = true) {
        self.id = id
        self.bundle = bundle
        self.consoleSocket = consoleSocket
        self.preserveFds = preserveFds
        self.detached = detached
    }

    /// `debug` gets what the network plan found (`NetworkSetup.plan`).
    package func validated(debug: (String) -> Void = { _ in }) throws -> ContainerPlan {
        do { try validateContainerID(id) } catch { throw RuntimeError("\(error)") }
        let loaded: OCIBundle.Bundle
        do { loaded = try OCIBundle.Bundle.load(bundle) } catch { throw RuntimeError("\(error)") }
        guard let process = loaded.spec.process else { throw RuntimeError("config.json: process: required to run a container") }
        if process.terminal == true {
            guard consoleSocket != nil || !detached else {
                throw RuntimeError("cannot allocate tty if runc will detach without setting console socket")
            }
        } else if consoleSocket != nil {
            throw RuntimeError("cannot use console socket if runc will not detach or allocate tty")
        }
        guard preserveFds == 0 else { throw RuntimeError("--preserve-fds: host file descriptors cannot be passed into a microVM") }
        let activated = Self.socketActivationFds(ProcessInfo.processInfo.environment, pid: getpid())
        guard activated == 0 else {
            throw RuntimeError("LISTEN_FDS=\(activated): socket activation passes host file descriptors, which cannot be passed into a microVM")
        }
        // Namespaces given by path: each must be a namespace of its entry's type.
        try NamespacePaths.check(loaded.spec.linux?.namespaces ?? [])
        // The microVM's size from the limits and annotations: refused here when it cannot be.
        var plan = try ContainerPlan(bundle: loaded)
        try plan.resolveMachine()
        // The engine's network as found in the netns (wired by the caller once the
        // state directory exists).
        plan.network = try NetworkSetup.plan(for: plan.spec, debug: debug)
        return plan
    }
}

extension CreateRequest {
    /// The fds systemd socket activation gives this process (LISTEN_FDS, when
    /// LISTEN_PID is `pid`), which runc passes on to the container as 3... with
    /// LISTEN_FDS and LISTEN_PID=1; 0 when there are none or they are for another process.
    package static func socketActivationFds(_ environment: [String: String], pid: pid_t) -> Int {
        guard let owner = environment["LISTEN_PID"].flatMap({ Int32($0) }), owner == pid,
              let count = environment["LISTEN_FDS"].flatMap({ Int($0) }), count > 0 else { return 0 }
        return count
    }
}

/// runc's pid file: decimal, no newline, written atomically.
package func writePidFile(_ path: String, _ pid: pid_t) throws {
    let temporary = path + ".sm-runc-tmp"
    guard FileManager.default.createFile(atPath: temporary, contents: Data(String(pid).utf8)) else {
        throw RuntimeError.system("open", temporary)
    }
    guard rename(temporary, path) == 0 else { throw RuntimeError.system("rename", temporary) }
}
