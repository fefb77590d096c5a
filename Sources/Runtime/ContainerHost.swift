import Foundation
import Cgroups
import AgentProtocol
import OCIBundle
import VMM
import CPosix
import Hooks

/// The VMM side of one container: the microVM, the agent session and the control
/// socket. `create` runs it in a process of its own (`sm-runc vmm`, the pid engines
/// wait on); `run` runs it in its own process.
///
/// Life: `bringUp` boots the guest until the agent reports the container created, and
/// records `created`; `start` (a control request) runs the process and records
/// `running`; `waitForEnd` returns the process's end, recorded as `stopped`.
package final class ContainerHost: @unchecked Sendable {
    package let id: String
    package let state: StateDirectory
    package let reporter: Reporter
    private let session: AgentSession
    package let machine: Machine
    /// Left once the machine thread returned; waiting on it again returns at once.
    private let machineEnded = DispatchGroup()
    private let lock = NSLock()
    private var record: ContainerRecord
    private var control: ControlChannel.Server?
    /// With a terminal: the fd whose window size the guest's pty follows (sent at
    /// start and on each SIGWINCH).
    package var terminalSize: Int32?
    private var resizeSource: DispatchSourceSignal?
    /// The exec proxies' host pids (from SO_PEERCRED), by exec connection.
    private var execProxies: [Int32: pid_t] = [:]
    /// The status `pause` found (running, or created), which `resume` restores.
    private var pausedFrom = ContainerStatus.running
    /// Whether the VMM confines itself (seccomp on every thread, capabilities dropped).
    /// Off only for diagnosis, and only by the host's operator (`confines`).
    package let confined: Bool
    /// The guest kernel's System.map when SM_RUNC_PROFILE_MS asks for a guest profile.
    private var systemMap: String?
    /// The annotation that once switched the confinement off from config.json; now
    /// only noted as ignored.
    package static let ignoredSeccompAnnotation = "run.sm-runc.vmm-seccomp"

    /// Whether the VMM confines itself: unless the host's operator switched it off
    /// (`RuntimeOptions.vmmConfinementOff`). Never the bundle's choice: config.json and
    /// its annotations come from whoever made the image or the pod (image tooling,
    /// `podman run --annotation`, Kubernetes metadata), the very party the sandbox is
    /// for. An annotation that asks is noted (`--debug`) and ignored.
    package static func confines(switchedOffByHost: Bool, annotations: [String: String]?, reporter: Reporter) -> Bool {
        if let value = annotations?[ignoredSeccompAnnotation] {
            reporter.debug("annotation \(ignoredSeccompAnnotation)=\(value) ignored: only the host switches the VMM's confinement off (SM_RUNC_VMM_SECCOMP=off or --vmm-seccomp off)")
        }
        return !switchedOffByHost
    }

    /// How long the guest may take to report the container created. Seconds on real
    /// KVM; tens of seconds under a nested, emulating hypervisor.
    package static var bootTimeout: Double {
        ProcessInfo.processInfo.environment["SM_RUNC_BOOT_TIMEOUT"].flatMap(Double.init) ?? 300
    }

    /// `confinementOff`: the host's operator switched the VMM's confinement off.
    package init(id: String, plan: ContainerPlan, state: StateDirectory, reporter: Reporter, confinementOff: Bool,
         diagnostics: @escaping @Sendable ([UInt8]) -> Void) throws {
        self.id = id
        self.state = state
        self.reporter = reporter
        let began = ProcessInfo.processInfo.systemUptime
        let spec = plan.spec
        guard let process = spec.process else { throw RuntimeError("\(state.planPath): spec.process: required to run a container") }
        guard let planned = plan.machine else { throw RuntimeError("\(state.planPath): machine: missing (made by an older create?)") }
        let guestRoot = planned.guestRoot, kernel = planned.kernel
        // Bind mounts of host paths, as create resolved them: staged under the state
        // directory as host mounts, served to the guest as one more share (see
        // `BindShares`). Undone if the rest of the set-up fails; otherwise when the
        // guest ends or at delete.
        let binds = try BindShares.prepare(plan.binds, stateDirectory: state.path)
        var prepared = false
        defer { if !prepared { BindShares.release(stateDirectory: state.path) } }
        // The fixed layout: a snapshot of it, when there is one, is restored below.
        reporter.debug("microVM size: \(plan.size)")
        reporter.debug("kernel command line (for a boot): \(planned.commandLine)")
        var configuration = SnapshotCache.configuration(kernel: kernel, guestRoot: guestRoot, size: plan.size, rootfs: plan.rootfs,
                                                        binds: binds.share, vsock: state.agentSocket)
        configuration.deadlineSeconds = nil
        if let network = plan.network {
            // Opened here, before confinement (setns and TUNSETIFF need CAP_SYS_ADMIN, CAP_NET_ADMIN).
            do { configuration.network = .init(tap: try TapDevice.open(name: network.tap, netnsPath: network.netnsPath)) } catch {
                throw RuntimeError("network: \(error)")
            }
        }
        configuration.log = { reporter.debug($0) }
        configuration.consoleOutput = diagnostics
        // Diagnosis (host side only): sample the guest's RIP every N ms and log where it ran.
        if let value = ProcessInfo.processInfo.environment["SM_RUNC_PROFILE_MS"], let interval = Int(value), interval > 0 {
            configuration.profileIntervalMilliseconds = interval
            systemMap = GuestArtifacts.systemMap(forKernel: kernel)
        }
        confined = Self.confines(switchedOffByHost: confinementOff, annotations: spec.annotations, reporter: reporter)
        if confined {
            configuration.confineThread = { kind in try SeccompFilter.install(kind.rules) }
        }
        record = ContainerRecord(
            id: id, pid: getpid(), pidStartTime: ProcessIdentity.ownStartTime, status: .creating,
            bundle: plan.bundle, rootfs: plan.rootfs, created: Reporter.timestamp(),
            owner: Self.userName(getuid()), annotations: spec.annotations)
        let hooks = spec.hooks
        record.hooks = hooks
        session = try AgentSession(
            socketPath: "\(state.agentSocket)_\(AgentProtocol.vsockPort)",
            create: ControlMessage(type: .create, process: 1, spec: process, mounts: binds.mounts, hostname: spec.hostname,
                                   rootReadonly: spec.root?.readonly, maskedPaths: spec.linux?.maskedPaths,
                                   readonlyPaths: spec.linux?.readonlyPaths, hooks: hooks,
                                   state: String(decoding: try OCIJSON.encodeCompact(StateDocument(record, status: .created)), as: UTF8.self),
                                   seccomp: try spec.linux?.seccomp.map(ContainerSeccomp.compile),
                                   devices: spec.linux?.devices, network: plan.network?.guest,
                                   domainname: spec.domainname, sysctl: spec.linux?.sysctl))
        // Restored (RAM mapped from the snapshot file, state loaded) or built to boot,
        // here: before the VMM joins its cgroup and confines itself.
        machine = try SnapshotCache.machine(configuration, plan: planned) { reporter.debug($0) }
        session.mark("VMM set-up", at: began)
        session.mark(machine.restoreSeconds == nil ? "machine built" : "machine restored")
        try state.save(record)
        prepared = true
    }

    /// Joins the container's cgroup (`linux.cgroupsPath`, as runc's init would) with
    /// its limits applied, so engines read statistics, OOM events and limits on the
    /// state pid, and the limits bound the whole microVM. Called once /dev/kvm and the
    /// guest's devices are open (an engine's device deny-all may follow; the VMM's own
    /// devices are allowed after the spec's rules, as runc appends its defaults) and
    /// before prestart, which runc runs inside the cgroup too. Unprivileged without a
    /// cgroupsPath, there is nothing to join (as rootless runc).
    package func joinCgroup(linux: Linux?, systemd: Bool) throws {
        if geteuid() != 0 && linux?.cgroupsPath == nil { return }
        // The guest was sized to fit the memory limit with the VMM (`GuestSize`).
        let cgroup: Cgroup
        do { cgroup = try Cgroup.forContainer(cgroupsPath: linux?.cgroupsPath, id: id, systemd: systemd) } catch {
            throw RuntimeError("cgroup: \(error)")
        }
        // Recorded first: whatever was made is removed with the state if a step fails.
        try update { $0.cgroup = cgroup.directories }
        do {
            try cgroup.create()
            try cgroup.apply(linux?.resources)
            try cgroup.join(pid: getpid())
        } catch {
            throw RuntimeError("cgroup \(linux?.cgroupsPath ?? id): \(error)")
        }
        reporter.debug("joined cgroup \(cgroup.directories.map(\.path).joined(separator: ", "))")
    }

    /// prestart and createRuntime: on the host, once the VM exists (its memory,
    /// devices and state record) and before the guest runs, so before the VMM
    /// confines itself; then the agent makes the container and runs createContainer.
    /// Their state says `created`, as the runtime-spec's lifecycle has it (these hooks
    /// run after the create operation's environment exists; crun does the same; runc
    /// says `creating`, which no engine we drive reads).
    package func runCreateHooks() throws {
        guard let hooks = record.hooks else { return }
        let state = try OCIJSON.encodeCompact(StateDocument(record, status: .created))
        try HookRunner.runAll(hooks.prestart, kind: "prestart", state: state)
        try HookRunner.runAll(hooks.createRuntime, kind: "createRuntime", state: state)
    }

    /// Boots the guest until the container is created, then records `created` and
    /// serves the control socket. On failure the guest is stopped.
    package func bringUp() throws {
        session.serveInBackground()
        let machine = self.machine, session = self.session, reporter = self.reporter
        machineEnded.enter()
        Thread.detachNewThread { [machineEnded] in
            do {
                session.mark(machine.restoreSeconds == nil ? "guest booting" : "guest running")
                let report = try machine.run()
                session.mark("guest ended")
                reporter.debug("guest end: \(report.exit)")
                if let net = machine.networkStatistics, net.receivedFrames + net.transmittedFrames + net.transmitDropped + net.receiveErrors > 0 {
                    reporter.debug("virtio-net: received \(net.receivedFrames) frames (\(net.receivedBytes) bytes), " +
                                   "sent \(net.transmittedFrames) (\(net.transmittedBytes) bytes), " +
                                   "\(net.receiveErrors) receive errors, \(net.transmitDropped) sent frames dropped")
                }
                // The VMM's own cost per container: its whole process (from exec: Swift
                // runtime, set-up, restore, devices, event loop) less the guest's time
                // in KVM_RUN (benchmarks read this line).
                let all = processCPUSeconds()
                reporter.debug("VMM CPU: \(formatFixed(all * 1000, digits: 1)) ms in all, " +
                               "\(formatFixed(report.kvmRunCPUSeconds * 1000, digits: 1)) ms of it in KVM_RUN, " +
                               "\(formatFixed(max(0, all - report.kvmRunCPUSeconds) * 1000, digits: 1)) ms outside")
                reporter.debug("timeline: \(session.timeline())")
                for line in report.deviceStatistics { reporter.debug(line) }
                if let profile = report.profile, let map = self.systemMap,
                   let text = try? String(contentsOfFile: map, encoding: .utf8) {
                    let top = profile.byFunction(GuestProfile.parseSystemMap(text)).prefix(40)
                    reporter.debug("guest profile (\(profile.total) samples): " + top.map { "\($0.0)=\($0.1)" }.joined(separator: " "))
                }
                session.end(.failed("the guest ended (\(report.exit)) before the process exited"))
            } catch {
                session.end(.failed("\(error)"))
            }
            machineEnded.leave()
        }
        do {
            try session.waitCreated(timeout: Self.bootTimeout)
            try update { $0.status = .created }
            control = try ControlChannel.Server(path: state.controlSocket) { [self] request in handle(request) }
        } catch {
            session.end(.failed("\(error)"))
            machine.requestStop()
            machineEnded.wait()
            throw error
        }
    }

    package func start() throws {
        try session.start(timeout: 120)
        try update { $0.status = .running }
        if let fd = terminalSize {
            sendWindowSize(of: fd)
            signal(SIGWINCH, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: SIGWINCH)
            source.setEventHandler { [self] in sendWindowSize(of: fd) }
            source.resume()
            resizeSource = source
        }
    }

    private func sendWindowSize(of fd: Int32) {
        var rows: UInt16 = 0, columns: UInt16 = 0
        guard cposix_get_window_size(fd, &rows, &columns) == 0 else { return }
        session.resize(rows: rows, columns: columns)
    }

    /// Delivers `signal`: to the process once it runs; before that, it ends the
    /// container the way the signal would have ended the process.
    package func kill(_ signal: Int32) throws {
        switch session.wait(timeout: 0, until: { _ in true }) {
        case .running:
            guard session.signal(signal) else { throw RuntimeError("container not running") }
        case .created:
            session.end(.signaled(signal))
            machine.requestStop()
        case .starting:
            _ = session.wait(timeout: 120) { $0 != .starting }
            try kill(signal)
        default:
            throw RuntimeError("container not running")
        }
    }

    /// Freezes the guest (its vCPU leaves KVM_RUN and waits); state `paused`.
    /// A running container, or (as runc freezes one too) a created one: `resume`
    /// gives back the status it had.
    package func pause() throws {
        let phase = session.wait(timeout: 0, until: { _ in true })
        guard (phase == .running && record.status == .running) || (phase == .created && record.status == .created) else {
            throw RuntimeError(record.status == .paused ? "container already paused" : "container not running")
        }
        guard machine.pause() else { throw RuntimeError("pause: the vCPU did not stop") }
        let before = record.status
        lock.withLock { pausedFrom = before }
        try update { $0.status = .paused }
    }

    package func resume() throws {
        guard record.status == .paused else { throw RuntimeError("container not paused") }
        machine.resume()
        let before = lock.withLock { pausedFrom }
        try update { $0.status = before }
    }

    /// Waits for the guest to end; records `stopped` with the outcome.
    package func waitForEnd() -> AgentSession.Outcome {
        machineEnded.wait()
        let outcome = session.outcome(timeout: 5) ?? .failed("the guest ended without reporting the process's exit")
        control?.stop()
        try? update {
            $0.status = .stopped
            switch outcome {
            case .exited(let code): $0.exitCode = code
            case .signaled(let signal): $0.exitSignal = signal
            case .failed: $0.exitCode = 255
            }
        }
        // The bind staging mounts stay until delete: a confined VMM cannot unmount.
        return outcome
    }

    private func handle(_ request: ControlChannel.Request) -> Result<String, RuntimeError>? {
        let line = request.line
        if line.hasPrefix("exec ") { return exec(request) }
        let words = line.split(separator: " ").map(String.init)
        do {
            switch words.first {
            case "start" where words.count == 1:
                try start()
            case "pause" where words.count == 1:
                try pause()
            case "resume" where words.count == 1:
                try resume()
            case "ps" where words.count == 1:
                // The host pids of the container: this VMM and the exec proxies.
                let pids = [getpid()] + lock.withLock { Array(execProxies.values) }.sorted()
                return .success(pids.map(String.init).joined(separator: " "))
            case "kill" where words.count == 2:
                guard let signal = Int32(words[1]), signal > 0, signal < 65 else { throw RuntimeError("invalid signal \(words[1])") }
                try kill(signal)
            default:
                throw RuntimeError("unknown control request \"\(line.prefix(40))\"")
            }
            return .success("")
        } catch let error as RuntimeError {
            return .failure(error)
        } catch {
            return .failure(RuntimeError("\(error)"))
        }
    }

    /// `exec <process JSON>` with the caller's stdio fds: starts the process in the
    /// guest, replies `ok <pid>`, forwards the caller's `kill N` / `resize R C` lines,
    /// and ends with `exit <code>` or `signal <n>` when the process does.
    private func exec(_ request: ControlChannel.Request) -> Result<String, RuntimeError>? {
        guard request.fds.count == 3 else { return .failure(RuntimeError("exec: want 3 stdio fds, got \(request.fds.count)")) }
        let spec: Spec.Process
        let started: AgentSession.Exec
        do {
            spec = try OCIJSON.decode(Spec.Process.self, from: Array(request.line.dropFirst(5).utf8), file: "exec process")
            started = try session.exec(spec, fds: request.fds)
        } catch let error as RuntimeError {
            return .failure(error)
        } catch {
            return .failure(RuntimeError("\(error)"))
        }
        let connection = request.connection
        let proxy = cposix_peer_pid(connection)
        if proxy > 0 { lock.withLock { execProxies[connection] = proxy } }
        defer { _ = lock.withLock { execProxies.removeValue(forKey: connection) } }
        var noTimeout = timeval(tv_sec: 0, tv_usec: 0)
        setsockopt(connection, SOL_SOCKET, SO_RCVTIMEO, &noTimeout, socklen_t(MemoryLayout<timeval>.size))
        _ = writeAll(connection, Array("ok \(started.pid ?? 0)\n".utf8))
        // The caller's lines while the process runs; EOF when we close below.
        let session = self.session
        Thread.detachNewThread {
            while let line = ControlChannel.readLine(connection) {
                let words = line.split(separator: " ").compactMap { Int32($0) }
                if line.hasPrefix("kill "), words.count == 1, words[0] > 0, words[0] < 65 {
                    session.signal(words[0], process: started.id)
                } else if line.hasPrefix("resize "), words.count == 2 {
                    session.resize(rows: UInt16(clamping: words[0]), columns: UInt16(clamping: words[1]), process: started.id)
                }
            }
            // The caller left, or we shut the connection down after the last line.
            close(connection)
        }
        _ = started.wait(timeout: 1e9) { $0.outcome != nil }
        let last: String
        switch started.outcome {
        case .exited(let code)?: last = "exit \(code)"
        case .signaled(let signal)?: last = "signal \(signal)"
        case .failed(let message)?: last = "error " + message.replacingOccurrences(of: "\n", with: " ")
        case nil: last = "error exec ended without a status"
        }
        _ = writeAll(connection, Array((last + "\n").utf8))
        shutdown(connection, Int32(SHUT_RDWR))
        started.closeFDs()
        return nil
    }

    private func update(_ change: (inout ContainerRecord) -> Void) throws {
        try lock.withLock {
            change(&record)
            try state.save(record)
        }
    }

    package static func userName(_ uid: uid_t) -> String {
        guard let entry = getpwuid(uid), let name = entry.pointee.pw_name else { return String(uid) }
        return String(cString: name)
    }
}

extension AgentSession.Outcome {
    /// The status a shell would report: the exit code, or 128 + the signal.
    package var shellStatus: Int32 {
        switch self {
        case .exited(let code): code
        case .signaled(let signal): 128 + signal
        case .failed: 255
        }
    }
}
