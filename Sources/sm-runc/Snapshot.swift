import Runtime
import ArgumentParser
import Foundation
import VMM
import AgentProtocol

/// `sm-runc snapshot`: boots the guest of the current kernel and agent to the agent's
/// quiescent point and saves it in the snapshot cache (see `SnapshotCache`), so that
/// `create` restores it instead of booting. Prints the file's path and the time taken.
struct SnapshotCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "snapshot",
        abstract: "Make the snapshot containers start from (for the current guest kernel, agent and size).")

    @OptionGroup var globals: GlobalOptions
    @Flag(help: "Make it again even if a valid one exists.") var force = false
    @Option(help: "Guest RAM in MiB (as a container with this size gets it: annotation io.sm-runc.memory_mib or its memory limit).")
    var memoryMib = GuestSize.defaultMemoryMiB
    @Option(help: "vCPUs (as a container with this many gets them).") var vcpus = 1

    func run() throws {
        let reporter = globals.reporter
        guard let guestRoot = GuestArtifacts.guestRoot() else {
            throw RuntimeError("guest root not found in \(GuestArtifacts.searchDirectories.joined(separator: ", ")): run scripts/build.sh")
        }
        try SnapshotCache.prepareDirectory()
        // The container layout; `make` points the rootfs and binds shares at empty
        // private directories, which the snapshotted guest has not mounted yet.
        guard (GuestSize.minimumMemoryMiB...GuestSize.maximumMemoryMiB).contains(memoryMib) else {
            throw RuntimeError("--memory-mib \(memoryMib): want \(GuestSize.minimumMemoryMiB) to \(GuestSize.maximumMemoryMiB)")
        }
        let maximumVCPUs = GuestSize.maximumVCPUs()
        guard (1...maximumVCPUs).contains(vcpus) else { throw RuntimeError("--vcpus \(vcpus): want 1 to \(maximumVCPUs)") }
        let configuration = SnapshotCache.template(kernel: try GuestArtifacts.kernel(), guestRoot: guestRoot,
                                                   size: GuestSize(memoryMiB: memoryMib, vcpus: vcpus))
        let log: @Sendable (String) -> Void = { reporter.debug($0) }
        let began = Date()
        let entry = try SnapshotCache.entry(for: configuration, agent: guestRoot + GuestLayout.agentPath)
        if !force, access(entry.path, F_OK) == 0,
           (try? Snapshot.load(entry.path, expecting: entry.identity, vcpuCount: configuration.vcpuCount,
                               memorySize: UInt64(configuration.memoryMiB) << 20)) != nil {
            print(entry.path)
            print("already made (checked in \(formatFixed(Date().timeIntervalSince(began), digits: 2)) s)")
            return
        }
        let report = try SnapshotCache.make(like: configuration, entry: entry, log: log)
        SnapshotCache.prune(keeping: entry.path)
        print(entry.path)
        print("made in \(formatFixed(Date().timeIntervalSince(began), digits: 2)) s: boot to the agent's snapshot point " +
              "\(formatFixed(report.bootSeconds, digits: 2)) s, capture \(formatFixed(report.captureSeconds * 1000, digits: 1)) ms, " +
              "\(report.fileBytes >> 20) MiB")
    }
}
