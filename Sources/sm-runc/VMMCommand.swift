import Runtime
import ArgumentParser
import Foundation
import OCIBundle
import CPosix
import VMM

/// `sm-runc vmm` (internal): the process `create` spawns and leaves behind. It serves
/// the microVM for the container's whole life and exits with the process's exit code,
/// or dies by the signal that killed it. Its stdio is the container's, so its own
/// diagnostics go only to --log.
struct VMMCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vmm", abstract: "Serve a container's microVM (started by create).", shouldDisplay: false)

    @OptionGroup var globals: GlobalOptions
    @Option var readyFd: Int32
    /// fds 0-2 are the slave of the pty whose master went to --console-socket (we are
    /// its session's leader: it becomes our controlling terminal).
    @Flag var console = false
    /// fd 0 is the caller's terminal (run in a terminal): follow its size.
    @Flag var terminal = false
    @Argument var id: String

    func run() throws {
        signal(SIGPIPE, SIG_IGN)
        // The pty becomes our controlling terminal: the engine's resizes arrive as SIGWINCH.
        if console { _ = cposix_set_controlling_terminal(0) }
        let reporter = Reporter(logPath: globals.log, format: Reporter.Format(rawValue: globals.logFormat) ?? .text,
                                debug: globals.debug, stderrAllowed: false)
        let host: ContainerHost
        do {
            // What create resolved: config.json is not read again.
            let state = StateDirectory(root: globals.root, id: id)
            let plan = try state.loadPlan()
            // Before any thread of ours exists: the pid engines see in `state` is in the
            // ipc, uts and network namespaces the spec names by path.
            for joined in try NamespacePaths.join(plan.spec.linux?.namespaces ?? []) { reporter.debug("joined the \(joined) namespace") }
            host = try ContainerHost(id: id, plan: plan, state: state,
                                     reporter: reporter, confinementOff: globals.runtime.vmmConfinementOff, diagnostics: { bytes in
                                         reporter.debug(String(decoding: bytes, as: UTF8.self))
                                     })
            host.terminalSize = console || terminal ? 0 : nil
            try host.joinCgroup(linux: plan.spec.linux, systemd: globals.systemdCgroup)
            try host.runCreateHooks()
            // From here on the guest may run: drop what the VMM does not need.
            if host.confined {
                try host.enterJail(logPath: globals.log)
                let kept = VMMCapabilities.kept(for: plan.spec)
                host.machine.restrictShares(setID: VMMCapabilities.granted("CAP_FSETID", to: plan.spec.process),
                                            devices: VMMCapabilities.granted("CAP_MKNOD", to: plan.spec.process)
                                                || VMMCapabilities.setUpMakesDevices(plan.spec))
                try Privileges.restrict(keeping: kept.map(\.cap))
                try SeccompFilter.install(SeccompPolicy.process(pid: getpid()), allThreads: true)
                reporter.debug("VMM confined: no_new_privs, capabilities \(kept.map(\.name).joined(separator: ",")), seccomp process/vCPU/event-loop lists of \(SeccompPolicy.process.count)/\(SeccompPolicy.vcpu.count)/\(SeccompPolicy.eventLoop.count) syscalls")
            } else {
                reporter.warning("VMM jail, seccomp filters and capability drop disabled (diagnosis only)")
            }
            try host.bringUp()
            // The container is made: its process may make device nodes only if granted.
            if host.confined { host.machine.restrictShares(devices: VMMCapabilities.granted("CAP_MKNOD", to: plan.spec.process)) }
        } catch {
            VMMProcess.report(readyFd, .failure(error))
            Foundation.exit(1)
        }
        // Whoever spawned us never hears that the container exists (it was killed, or
        // a `run` was interrupted and removed the state): nobody will start or delete
        // this container, so it ends here rather than hold its RAM for nothing.
        guard VMMProcess.report(readyFd, .success(())) else {
            reporter.error("container \(id): created, but its creator is gone (the ready pipe is closed); the VMM ends")
            Foundation.exit(1)
        }
        let outcome = host.waitForEnd()
        switch outcome {
        case .exited(let code): throw ExitCode(code)
        case .signaled(let signal):
            // The signal ended a process in the guest: a core of the VMM holds nothing of
            // it and would pass for a VMM crash.
            _ = cposix_set_dumpable(0)
            Signals.dieLike(signal)
        case .failed(let message):
            reporter.error("container \(id): \(message)")
            throw ExitCode(255)
        }
    }
}
