import ArgumentParser
import Foundation
import AgentProtocol
import OCIBundle
import VMM

/// `sm-runc run`: boots the bundle in a microVM and runs process.args in it, in the
/// foreground, with this process's stdio, and exits with the process's status
/// (128+signal when it was killed), as `runc run` does.
///
/// Today's scope: the VMM runs in this process (no separate create/start yet), no
/// terminal, no detach; the guest mounts the bundle's rootfs over virtio-fs and the
/// spec's mounts (bind mounts of host paths reach it as one more share, `BindShares`).
struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create and run a container in a microVM (foreground).")

    @Option(name: [.customShort("b"), .long], help: "Path to the bundle (default: the current directory).")
    var bundle: String = "."
    @Option(help: "Write the pid of the process that waits for the container here (no newline).")
    var pidFile: String?
    @Option(help: "State directory root.") var root: String = "/run/sm-runc"
    @Flag(help: "Print VMM and guest kernel diagnostics on stderr.") var debug = false
    @Flag(help: "Not supported yet: run in the background.") var detach = false
    @Argument(help: "The container id.") var id: String

    func run() throws {
        guard !detach else { throw RuntimeError("run --detach is not supported yet (issue 4: create/start)") }
        do { try validateContainerID(id) } catch { throw RuntimeError("\(error)") }
        let loaded: OCIBundle.Bundle
        do { loaded = try OCIBundle.Bundle.load(bundle) } catch { throw RuntimeError("\(error)") }
        let spec = loaded.spec
        guard let process = spec.process else { throw RuntimeError("config.json: process: required to run a container") }
        guard process.terminal != true else {
            throw RuntimeError("process.terminal: a terminal needs --console-socket (create/start, issue 4); set it to false")
        }

        let state = root + "/" + id
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        guard mkdir(state, 0o700) == 0 else {
            throw RuntimeError(errno == EEXIST ? "container with id exists: \(id)" : "mkdir \(state): \(String(cString: strerror(errno)))")
        }
        let logger = DebugLog(enabled: debug)
        let socketPath = state + "/agent.sock"
        // Never a recursive delete: the state directory holds bind mounts of host paths.
        defer {
            BindShares.removeStateDirectory(state, files: ["agent.sock", "agent.sock_\(AgentProtocol.vsockPort)"],
                                            log: { logger.debug($0) })
        }
        // Host bind mounts staged as the `binds` share; released before the state
        // directory is removed (defers run last first).
        let binds = try BindShares.prepare(mounts: spec.mounts ?? [], stateDirectory: state, bundle: loaded.path)
        defer { BindShares.release(stateDirectory: state) }
        if let pidFile {
            try String(getpid()).write(toFile: pidFile, atomically: true, encoding: .utf8)
        }

        let session = try AgentSession(
            socketPath: "\(socketPath)_\(AgentProtocol.vsockPort)",
            create: ControlMessage(type: .create, process: 1, spec: process, mounts: binds.mounts, hostname: spec.hostname,
                                   rootReadonly: spec.root?.readonly, maskedPaths: spec.linux?.maskedPaths,
                                   readonlyPaths: spec.linux?.readonlyPaths))
        session.serveInBackground()
        // Like `runc run`: signals sent to us go to the container's process.
        let forwarded = [SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH]
        let sources = forwarded.map { number -> DispatchSourceSignal in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number)
            source.setEventHandler { session.signal(number) }
            source.resume()
            return source
        }
        defer { sources.forEach { $0.cancel() } }

        guard let guestRoot = GuestArtifacts.guestRoot() else {
            throw RuntimeError("guest root not found in \(GuestArtifacts.searchDirectories.joined(separator: ", ")): run scripts/build.sh")
        }
        var configuration = MachineConfiguration(kernelPath: try GuestArtifacts.kernel())
        configuration.shares = [
            .init(tag: "sm-guest", hostPath: guestRoot, readOnly: true),
            // Writable at the device: the agent makes mount points, then remounts the
            // root read-only when root.readonly says so (as runc does).
            .init(tag: "rootfs", hostPath: loaded.rootfs, readOnly: false),
        ] + (binds.share.map { [$0] } ?? [])
        configuration.rootShare = ("sm-guest", "/sm-init")
        configuration.vsockSocketPath = socketPath
        configuration.extraKernelParameters = AgentProtocol.kernelParameters
        configuration.deadlineSeconds = nil
        configuration.log = { logger.debug($0) }
        configuration.consoleOutput = { bytes in
            if debug { bytes.withUnsafeBytes { _ = write(2, $0.baseAddress, $0.count) } }
        }
        let machine = try Machine(configuration)
        Thread.detachNewThread {
            do {
                try session.waitCreated(timeout: 600)
                try session.start(timeout: 60)
            } catch {
                session.end(.failed("\(error)"))
                machine.requestStop()
            }
        }
        let report = try machine.run()
        session.end(.failed("the guest ended (\(report.exit)) before the process exited"))
        logger.debug("guest end: \(report.exit)")

        switch session.outcome(timeout: 5) {
        case .exited(let code)?:
            throw ExitCode(code)
        case .signaled(let signal)?:
            throw ExitCode(128 + signal)
        case .failed(let message)?:
            let guest = report.exit.isClean ? "" : " (guest: \(report.exit))"
            throw RuntimeError("container \(id): \(message)\(guest)")
        case nil:
            throw RuntimeError("container \(id): the guest ended without reporting the process's exit (\(report.exit))")
        }
    }
}
