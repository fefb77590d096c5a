#if canImport(Glibc)
import Glibc
#endif
import Dispatch
import AgentProtocol

/// What `Machine.bootAndSnapshot` did.
public struct SnapshotReport: Sendable {
    /// The agent's snapshot-ready line (`sm-init: snapshot-ready uptime=<s>`).
    public var readyLine: String
    /// Wall seconds from `bootAndSnapshot` to the ready line (the boot).
    public var bootSeconds: Double
    /// Wall seconds to pause, capture and write the file.
    public var captureSeconds: Double
    public var fileBytes: UInt64
    /// How the machine's run ended (it is stopped after the capture).
    public var report: MachineReport
}

extension Machine {
    /// Builds a machine that continues the guest saved at `path`, which must be a
    /// snapshot of this identity made with the same device layout as `configuration`
    /// (same slots, tags and memory size; the shares may be other host directories).
    /// The agent gets its wake-up line as soon as the machine runs.
    public convenience init(_ configuration: MachineConfiguration, snapshotPath path: String, identity: SnapshotIdentity) throws {
        let snapshot = try Snapshot.load(path, expecting: identity, vcpuCount: configuration.vcpuCount,
                                         memorySize: UInt64(configuration.memoryMiB) << 20)
        try self.init(configuration, restoring: snapshot)
    }

    /// `init(_:snapshotPath:identity:)` from a snapshot file the caller opened and
    /// checked (`path` names it): the file checked is the file restored.
    public convenience init(_ configuration: MachineConfiguration, snapshotFile file: OwnedDescriptor, path: String,
                            identity: SnapshotIdentity) throws {
        let snapshot = try Snapshot.load(file, path: path, expecting: identity, vcpuCount: configuration.vcpuCount,
                                         memorySize: UInt64(configuration.memoryMiB) << 20)
        try self.init(configuration, restoring: snapshot)
    }

    /// Boots the guest in snapshot mode (`configuration.snapshotPoint`), waits for
    /// the agent's snapshot-ready line, pauses the vCPU, stops the event loop and
    /// writes a snapshot (RAM, vCPU, irqchip/PIT/clock and device state) to `path`;
    /// then ends this machine. Fails if the guest ends first, or the deadline (or 600
    /// s) passes, or a device is not at a quiescent point.
    public func bootAndSnapshot(to path: String, identity: SnapshotIdentity) throws -> SnapshotReport {
        guard configuration.snapshotPoint else {
            throw MachineError.invalidConfiguration("bootAndSnapshot needs `snapshotPoint` (the agent stops only when told)")
        }
        let began = monotonicSeconds()
        let limit = configuration.deadlineSeconds ?? 600
        let running = try launch()
        var ended = false
        func end() -> MachineReport {
            if !ended {
                ended = true
                requestStop()
                running.finished.wait()
            }
            return finish(running)
        }
        while snapshotReady.signal.wait(timeout: .now() + 0.05) == .timedOut {
            if let exit = running.exit {
                _ = end()
                throw MachineError.snapshotFailed("the guest ended before its snapshot point: \(exit)")
            }
            if monotonicSeconds() - began > limit {
                sampleAll()
                _ = end()
                throw MachineError.snapshotFailed("no `\(SnapshotPoint.readyLine)` line within \(Int(limit)) s (\(whereabouts()))")
            }
        }
        let booted = monotonicSeconds()
        do {
            guard pause() else { throw MachineError.snapshotFailed("the vCPU did not pause") }
            try captureStopped(to: path, identity: identity)
        } catch {
            _ = end()
            throw error
        }
        let captured = monotonicSeconds()
        let report = end()
        var st = stat()
        let size = stat(path, &st) == 0 ? UInt64(st.st_size) : 0
        return SnapshotReport(readyLine: snapshotReady.line ?? "", bootSeconds: booted - began,
                              captureSeconds: captured - booted, fileBytes: size, report: report)
    }
}
