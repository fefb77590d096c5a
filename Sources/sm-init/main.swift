// sm-init: PID 1 in the sm-runc guest. Static, no Foundation (it rides in an
// uncompressed initramfs, and every byte the guest kernel unpacks is emulated
// on nested hosts).
//
// Today: mount /proc, /sys, /dev; print the ready line with the guest's uptime;
// restart the guest, which with `reboot=t` ends as a triple fault the VMM reports
// as the guest's normal end.
import AgentProtocol
import OCIBundle
import CGuest
import Hooks
#if canImport(Glibc)
import Glibc
#endif

func say(_ text: String) {
    var line = Array((text + "\n").utf8)
    _ = line.withUnsafeMutableBytes { write(1, $0.baseAddress, $0.count) }
}

func ensureDirectory(_ path: String) {
    if mkdir(path, 0o755) != 0 && errno != EEXIST {
        say("sm-init: mkdir \(path): \(String(cString: strerror(errno)))")
    }
}

/// Mounts `source` of `type` at `target`; an already-mounted target is fine.
func mountFilesystem(_ source: String, at target: String, type: String, flags: UInt = 0) -> Bool {
    ensureDirectory(target)
    if mount(source, target, type, flags, nil) == 0 || errno == EBUSY { return true }
    say("sm-init: mount \(type) on \(target): \(String(cString: strerror(errno)))")
    return false
}

func uptime() -> String {
    let fd = open("/proc/uptime", O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return "0" }
    defer { close(fd) }
    var buffer = [UInt8](repeating: 0, count: 64)
    let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, 63) }
    guard n > 0 else { return "0" }
    return String(decoding: buffer[0..<n].prefix { $0 != 0x20 && $0 != 0x0a }, as: UTF8.self)
}

/// Ends the guest. Power-off would halt inside the guest kernel (no ACPI); a restart
/// with `reboot=t` reaches the VMM as KVM_EXIT_SHUTDOWN.
func endGuest() -> Never {
    sync()
    _ = cguest_restart()
    say("sm-init: reboot: \(String(cString: strerror(errno)))")
    while true { pause() }
}

guard getpid() == 1 else {
    say("sm-init: must run as PID 1 in the sm-runc guest")
    exit(1)
}
let mounted = mountFilesystem("proc", at: "/proc", type: "proc", flags: UInt(MS_NOSUID | MS_NODEV | MS_NOEXEC))
    && mountFilesystem("sysfs", at: "/sys", type: "sysfs", flags: UInt(MS_NOSUID | MS_NODEV | MS_NOEXEC))
    && mountFilesystem("devtmpfs", at: "/dev", type: "devtmpfs", flags: UInt(MS_NOSUID))
    && Container.prepareMountPoints()
/// Opens the agent channel to the VMM and takes its hello (validated: same protocol
/// version). The agent's own hello leaves with its answer to `create` (`serve`), one
/// guest vsock write fewer before the container's set-up. Without a vsock device or a
/// listener on the host this fails at once, and the agent ends the guest.
func connectToHost() -> Channel? {
    let fd = cguest_vsock_connect(AgentProtocol.hostCID, AgentProtocol.vsockPort)
    guard fd >= 0 else { return nil }
    let channel = Channel(fd: fd)
    do {
        guard let reply = try channel.nextControl(), reply.type == .hello else { return nil }
        say("sm-init: agent channel up (protocol v\(reply.version ?? 0))")
        return channel
    } catch {
        say("sm-init: agent channel: \(error)")
        return nil
    }
}

/// How many OOM kills the guest kernel's log holds ("Killed process N (name)", which
/// the OOM killer prints; the guest kernel has no VM event counters for /proc/vmstat).
func oomKills() -> Int {
    var buffer = [CChar](repeating: 0, count: 1 << 17)
    let n = buffer.withUnsafeMutableBufferPointer { cguest_read_kernel_log($0.baseAddress, Int32($0.count)) }
    guard n > 0 else { return 0 }
    let bytes = buffer[0..<Int(n)].map { UInt8(bitPattern: $0) }
    let marker = Array("Killed process ".utf8)
    var count = 0
    var i = 0
    while i + marker.count <= bytes.count {
        if bytes[i] == marker[0] && Array(bytes[i..<i + marker.count]) == marker { count += 1; i += marker.count } else { i += 1 }
    }
    return count
}

/// Serves the VMM: `create` prepares the container's root and mounts, `start` runs
/// its process; the process's exit ends the guest.
func serve(_ channel: Channel) {
    do {
        guard let create = try channel.nextControl(), create.type == .create, let spec = create.spec, let id = create.process else {
            return
        }
        if let hostname = create.hostname { _ = sethostname(hostname, hostname.utf8.count) }
        if let domainname = create.domainname { _ = setdomainname(domainname, domainname.utf8.count) }
        let hookState = Array((create.state ?? "{}").utf8)
        let executable: String
        do {
            try GuestNetworkSetup.configure(create.network)
            try Container.prepare(create)
            executable = try Container.checkExecutable(spec)
            try HookRunner.runAll(create.hooks?.createContainer, kind: "createContainer", state: hookState, root: Container.root)
        } catch {
            try channel.send([.control(.hello()), .control(ControlMessage(type: .error, process: id, message: "\(error)"))])
            channel.awaitClose(milliseconds: 5000)
            return
        }
        try channel.send([.control(.hello()), .control(ControlMessage(type: .created, process: id))])
        // Until `start`, the only other thing the host may do is close the channel
        // (the container was killed or deleted while created).
        guard let start = try channel.nextControl(), start.type == .start, start.process == id else { return }
        do {
            try HookRunner.runAll(create.hooks?.startContainer, kind: "startContainer", state: hookState, root: Container.root)
            let status = try Supervisor(channel: channel, seccomp: create.seccomp).run(spec, executable: executable, id: id)
            if cguest_signaled(status) != 0, cguest_term_signal(status) == SIGKILL, oomKills() > oomKillsAtBoot {
                // What tells a guest OOM from the host's: the VMM logs this line (--debug).
                say("sm-init: the container process was killed by the guest's OOM killer (guest RAM exhausted)")
            }
            let exited = cguest_signaled(status) != 0
                ? ControlMessage(type: .exited, process: id, signal: cguest_term_signal(status))
                : ControlMessage(type: .exited, process: id, exitCode: cguest_exit_code(status))
            try channel.send(.control(exited))
        } catch {
            try channel.send(.control(ControlMessage(type: .error, process: id, message: "\(error)")))
        }
        channel.awaitClose(milliseconds: 5000)
    } catch {
        say("sm-init: agent channel: \(error)")
    }
}

/// The OOM kills in the kernel log before any container work: counted here, before
/// the snapshot point, since rendering the log is a lot of (emulated) guest kernel
/// work that would otherwise delay every start.
let oomKillsAtBoot = mounted ? oomKills() : 0

if mounted {
    say(ReadyLine(uptime: uptime()).rendered)
    if SnapshotPoint.requested() { SnapshotPoint.awaitWakeUp() }
    if let channel = connectToHost() { serve(channel) }
}
endGuest()
