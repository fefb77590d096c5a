import Foundation
import Synchronization

/// Debian's `qemu-system-x86_64 -M microvm` with Debian's C virtiofsd
/// (`/usr/lib/qemu/virtiofsd`, package qemu-system-common) serving a host directory as
/// the guest's root over vhost-user-fs: the baseline for our VMM's virtio-fs device.
///
/// What this takes with qemu 7.2 (found by trying):
/// - vhost-user needs guest RAM in a shared memory backend:
///   `-object memory-backend-memfd,id=mem,size=...,share=on` and `memory-backend=mem`
///   as a microvm machine property.
/// - microvm's virtio-mmio transports are legacy (version 1) by default, and
///   libvhost-user refuses them ("virtio legacy devices aren't supported by
///   libvhost-user"; qemu then waits forever): `-global virtio-mmio.force-legacy=false`.
/// - With `acpi=off` qemu APPENDS its `virtio_mmio.device=` entries to `-append`, so a
///   `--` in the kernel parameters would hand them to init as arguments and the guest
///   finds no devices at all. Init's argument must be a bare word instead (without a
///   `.`, which the kernel takes for an unused module parameter), e.g. `init=/bin/sh /fsbench`.
public struct QEMUMicrovmVirtioFs: Sendable {
    public static let virtiofsd = "/usr/lib/qemu/virtiofsd"

    public var kernel: String
    /// The directory virtiofsd serves; the guest mounts it as `/` (`root=<tag> rootfstype=virtiofs`).
    public var sharedDirectory: String
    public var tag = "rootfs"
    /// The whole `-append` string (qemu adds its `virtio_mmio.device=` entries after it).
    public var kernelParameters: [String]
    public var memoryMiB = 128
    /// virtiofsd `-o cache=` (auto: 1 s attribute/entry timeouts, no writeback).
    public var cache = "auto"
    /// Where the vhost-user socket and virtiofsd's log go (a fresh directory by default).
    public var workDirectory: String

    public init(kernel: String, sharedDirectory: String, kernelParameters: [String], workDirectory: String? = nil) {
        self.kernel = kernel
        self.sharedDirectory = sharedDirectory
        self.kernelParameters = kernelParameters.filter { !$0.hasPrefix("virtio_mmio.device=") }
        self.workDirectory = workDirectory ?? FileManager.default.temporaryDirectory
            .appendingPathComponent("sm-bench-virtiofsd-\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path
    }

    public var socketPath: String { workDirectory + "/virtiofsd.sock" }
    var logPath: String { workDirectory + "/virtiofsd.log" }

    public var virtiofsdArguments: [String] {
        ["--socket-path=\(socketPath)", "-o", "source=\(sharedDirectory)", "-o", "cache=\(cache)"]
    }

    /// The same machine as `QEMUMicrovm` under KVM, plus the shared memory backend.
    public var machine: String {
        QEMUMicrovm(kernel: kernel, initrd: "", kernelParameters: []).machine + ",memory-backend=mem"
    }

    public var qemuArguments: [String] {
        [
            "-M", machine,
            "-object", "memory-backend-memfd,id=mem,size=\(memoryMiB)M,share=on",
            "-global", "virtio-mmio.force-legacy=false",
            "-accel", "kvm",
            "-cpu", "host,-arch-capabilities",
            "-m", "\(memoryMiB)M", "-smp", "1",
            "-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
            "-kernel", kernel,
            "-device", "virtio-serial-device",
            "-chardev", "stdio,id=console0,signal=off", "-device", "virtconsole,chardev=console0",
            "-chardev", "socket,id=fs0,path=\(socketPath)",
            "-device", "vhost-user-fs-device,chardev=fs0,tag=\(tag)",
            "-append", kernelParameters.joined(separator: " "),
        ]
    }

    public struct Result: Sendable {
        public var console: String
        /// Seconds from starting qemu to its exit.
        public var wallSeconds: Double
        public var exitStatus: Int32
        public var timedOut: Bool
        public var virtiofsdExitStatus: Int32
        public var virtiofsdLog: String
        /// Host CPU seconds (user + system) of qemu (KVM_RUN included) and of virtiofsd
        /// (sampled every 0.25 s while it runs: its last fraction of a second is qemu's).
        public var qemuCPUSeconds: Double
        public var virtiofsdCPUSeconds: Double
        public var hostCPUSeconds: Double { qemuCPUSeconds + virtiofsdCPUSeconds }
    }

    public struct LaunchError: Error, CustomStringConvertible {
        public let description: String
    }

    /// Starts virtiofsd, boots qemu once, and stops both: qemu is killed after `deadline`
    /// seconds (SIGTERM, then SIGKILL), virtiofsd when qemu is gone. The work directory
    /// (socket, log) is removed.
    public func run(deadline: Double) throws -> Result {
        for binary in [Self.virtiofsd, QEMUMicrovm.binary] where !FileManager.default.isExecutableFile(atPath: binary) {
            throw LaunchError(description: "\(binary) not found (Debian packages qemu-system-x86, qemu-system-common)")
        }
        if kernelParameters.contains("--") {
            throw LaunchError(description: "qemu microvm appends virtio_mmio.device= after -append: a `--` would pass them to init")
        }
        let fm = FileManager.default
        try fm.createDirectory(atPath: workDirectory, withIntermediateDirectories: true)
        defer { try? fm.removeItem(atPath: workDirectory) }
        let childrenBefore = childrenCPUSeconds()

        // virtiofsd first: qemu connects to its socket at start-up.
        guard fm.createFile(atPath: logPath, contents: nil), let log = FileHandle(forWritingAtPath: logPath) else {
            throw LaunchError(description: "cannot create \(logPath)")
        }
        let daemon = Process()
        daemon.executableURL = URL(fileURLWithPath: Self.virtiofsd)
        daemon.arguments = virtiofsdArguments
        daemon.standardInput = FileHandle.nullDevice
        daemon.standardOutput = log
        daemon.standardError = log
        try daemon.run()
        try? log.close()
        defer { stop(daemon, grace: 5) }
        let socketDeadline = Date().addingTimeInterval(10)
        while !fm.fileExists(atPath: socketPath) {
            guard daemon.isRunning, Date() < socketDeadline else {
                stop(daemon, grace: 1)
                throw LaunchError(description: "virtiofsd did not create \(socketPath): " + readLog())
            }
            usleep(20_000)
        }

        let start = Date()
        let (qemu, output) = try ConsoleProcess.launch(QEMUMicrovm.binary, qemuArguments)
        // At the deadline SIGTERM, 5 s later SIGKILL. If virtiofsd dies first qemu can
        // hang waiting for it, so that also ends qemu.
        let timer = DispatchSource.makeTimerSource()
        timer.schedule(deadline: .now() + deadline, repeating: 5)
        let ticks = Mutex(0)
        timer.setEventHandler {
            guard qemu.isRunning else { return }
            let tick = ticks.withLock { $0 += 1; return $0 }
            if tick == 1 { qemu.terminate() } else { kill(qemu.processIdentifier, SIGKILL) }
        }
        timer.resume()
        // virtiofsd is reaped whenever it exits (before or after qemu), so its CPU is
        // sampled from /proc while it runs (it and its sandboxed child), every 0.25 s.
        let daemonCPU = Mutex(0.0)
        let daemonPID = daemon.processIdentifier
        let watcher = DispatchSource.makeTimerSource()
        watcher.schedule(deadline: .now() + 0.25, repeating: 0.25)
        watcher.setEventHandler {
            if daemon.isRunning {
                let sample = processTreeCPUSeconds(daemonPID)
                daemonCPU.withLock { $0 = max($0, sample) }
            } else if qemu.isRunning {
                qemu.terminate()
            }
        }
        watcher.resume()
        let console = ConsoleProcess.drain(output)
        qemu.waitUntilExit()
        timer.cancel()
        watcher.cancel()
        let wall = Date().timeIntervalSince(start)
        stop(daemon, grace: 5)
        let total = childrenCPUSeconds() - childrenBefore
        let virtiofsdCPU = min(total, daemonCPU.withLock { $0 })
        return Result(console: String(decoding: console, as: UTF8.self), wallSeconds: wall,
                      exitStatus: qemu.terminationStatus,
                      timedOut: qemu.terminatedBySignal && wall >= deadline,
                      virtiofsdExitStatus: daemon.terminationStatus,
                      virtiofsdLog: readLog(),
                      qemuCPUSeconds: total - virtiofsdCPU,
                      virtiofsdCPUSeconds: virtiofsdCPU)
    }

    /// Waits up to `grace` seconds for the process to exit by itself (virtiofsd does
    /// when qemu disconnects), then SIGTERM, then SIGKILL. Its sandboxed child dies with
    /// it (PR_SET_PDEATHSIG).
    private func stop(_ process: Process, grace: Double) {
        let until = Date().addingTimeInterval(grace)
        while process.isRunning && Date() < until { usleep(20_000) }
        if process.isRunning { process.terminate() }
        let killAt = Date().addingTimeInterval(3)
        while process.isRunning && Date() < killAt { usleep(20_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    private func readLog() -> String {
        (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
    }
}

/// User + system CPU of this process's waited-for children (and their descendants).
func childrenCPUSeconds() -> Double {
    var usage = rusage()
    getrusage(__rusage_who_t(RUSAGE_CHILDREN.rawValue), &usage)
    return Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6
        + Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
}

/// User + system CPU of a process and its live descendants, from /proc (clock ticks).
func processTreeCPUSeconds(_ pid: Int32) -> Double {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
          let close = stat.lastIndex(of: ")") else { return 0 }
    // Fields after "(comm)": state is field 3; utime and stime are fields 14 and 15.
    let fields = stat[stat.index(after: close)...].split(separator: " ")
    var seconds = 0.0
    if fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) {
        seconds = (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }
    let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
    for task in tasks {
        let children = (try? String(contentsOfFile: "/proc/\(pid)/task/\(task)/children", encoding: .utf8)) ?? ""
        for child in children.split(separator: " ").compactMap({ Int32($0) }) { seconds += processTreeCPUSeconds(child) }
    }
    return seconds
}
