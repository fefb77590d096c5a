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

    func run() throws {
        let reporter = globals.reporter
        guard let guestRoot = GuestArtifacts.guestRoot() else {
            throw RuntimeError("guest root not found in \(GuestArtifacts.searchDirectories.joined(separator: ", ")): run scripts/build.sh")
        }
        try SnapshotCache.prepareDirectory()
        // The shares the snapshotted guest has not mounted yet: empty, private, removed after.
        var template = Array("\(SnapshotCache.directory)/make.XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else {
            throw RuntimeError("mkdtemp in \(SnapshotCache.directory): \(BindShares.errorText(errno))")
        }
        let work = String(cString: made)
        defer {
            for name in ["rootfs", "binds"] { rmdir(work + "/" + name) }
            unlink(work + "/vsock")
            unlink(work + "/vsock_\(AgentProtocol.vsockPort)")
            rmdir(work)
        }
        for name in ["rootfs", "binds"] {
            guard mkdir(work + "/" + name, 0o700) == 0 else { throw RuntimeError("mkdir \(work)/\(name): \(BindShares.errorText(errno))") }
        }
        var configuration = SnapshotCache.configuration(
            kernel: try GuestArtifacts.kernel(), guestRoot: guestRoot, rootfs: work + "/rootfs",
            binds: .init(tag: BindShares.tag, hostPath: work + "/binds", readOnly: true), vsock: work + "/vsock")
        configuration.snapshotPoint = true
        configuration.deadlineSeconds = ContainerHost.bootTimeout
        configuration.log = { reporter.debug($0) }
        configuration.consoleOutput = { reporter.debug(String(decoding: $0, as: UTF8.self)) }
        let began = Date()
        let entry = try SnapshotCache.entry(for: configuration, agent: guestRoot + "/sm-init")
        if !force, access(entry.path, F_OK) == 0,
           (try? Snapshot.load(entry.path, expecting: entry.identity, vcpuCount: configuration.vcpuCount,
                               memorySize: UInt64(configuration.memoryMiB) << 20)) != nil {
            print(entry.path)
            print("already made (checked in \(formatFixed(Date().timeIntervalSince(began), digits: 2)) s)")
            return
        }
        let report = try Machine(configuration).bootAndSnapshot(to: entry.path, identity: entry.identity)
        try SnapshotCache.checkOwned(entry.path, directory: false)
        print(entry.path)
        print("made in \(formatFixed(Date().timeIntervalSince(began), digits: 2)) s: boot to the agent's snapshot point " +
              "\(formatFixed(report.bootSeconds, digits: 2)) s, capture \(formatFixed(report.captureSeconds * 1000, digits: 1)) ms, " +
              "\(report.fileBytes >> 20) MiB")
    }
}
