import Foundation
import AgentProtocol
import VMM

/// Snapshots of a booted guest waiting at the agent's quiescent point, one per
/// (kernel, agent, vCPU count, memory size, VMM version, kernel command line), in
/// `<cache>/snapshots/<key>.snap` (cache: `SM_RUNC_CACHE`, default /var/cache/sm-runc,
/// as scripts/build-kernel.sh). The directory is 0700 and each file 0600, owned by
/// us: a snapshot is guest RAM and state that the VMM trusts.
///
/// Every container has the same device layout (`configuration`), so one snapshot fits
/// them all: the shares of a restored machine point at this container's rootfs and
/// bind staging directory, which the snapshotted guest has not mounted yet.
enum SnapshotCache {
    static var root: String {
        let value = ProcessInfo.processInfo.environment["SM_RUNC_CACHE"] ?? ""
        return value.isEmpty ? "/var/cache/sm-runc" : value
    }

    static var directory: String { root + "/snapshots" }

    /// The VMM version a snapshot is tied to (besides the kernel and agent hashes).
    static let vmmVersion = "sm-runc \(SMRunc.version)"

    /// The fixed device layout of every container's machine: console, vsock, the
    /// agent's root share, the container's root and its bind staging directory.
    static func configuration(kernel: String, guestRoot: String, rootfs: String, binds: MachineConfiguration.Share,
                              vsock: String) -> MachineConfiguration {
        var configuration = MachineConfiguration(kernelPath: kernel)
        configuration.shares = [
            .init(tag: "sm-guest", hostPath: guestRoot, readOnly: true),
            // Writable at the device: the agent makes mount points, then remounts the
            // root read-only when root.readonly says so (as runc does).
            .init(tag: "rootfs", hostPath: rootfs, readOnly: false),
            binds,
        ]
        configuration.rootShare = ("sm-guest", "/sm-init")
        configuration.vsockSocketPath = vsock
        configuration.extraKernelParameters = AgentProtocol.kernelParameters
        return configuration
    }

    /// Where the snapshot for a configuration lives and what it must have been made with.
    struct Entry {
        var identity: SnapshotIdentity
        var key: String
        var path: String { SnapshotCache.directory + "/" + key + ".snap" }
    }

    /// The entry for `configuration` with the agent at `agent` (hashes both files).
    static func entry(for configuration: MachineConfiguration, agent: String) throws -> Entry {
        let kernelHash = try hashFile(configuration.kernelPath, what: "guest kernel")
        let agentHash = try hashFile(agent, what: "guest agent")
        let hostKind = configuration.hostKind ?? HostKind.detect()
        // The command line as the machine makes it, but for the device parameters
        // (the share tags and order stand for them).
        var commandLine = MachineConfiguration.baseKernelParameters + hostKind.kernelWorkarounds
        commandLine += configuration.shares.map { "share=\($0.tag)\($0.readOnly ? ":ro" : "")" }
        if configuration.vsockSocketPath != nil { commandLine.append("vsock") }
        if let root = configuration.rootShare { commandLine += ["root=\(root.tag)", "init=\(root.initPath)"] }
        if configuration.pit { commandLine.append("pit") }
        commandLine += configuration.extraKernelParameters
        let material = [
            "kernel=" + hex(kernelHash), "agent=" + hex(agentHash), "vcpus=\(configuration.vcpuCount)",
            "memory=\(configuration.memoryMiB)", "vmm=\(vmmVersion)", "cmdline=" + commandLine.joined(separator: " "),
        ].joined(separator: "\n")
        return Entry(identity: SnapshotIdentity(vmmVersion: vmmVersion, kernel: kernelHash, agent: agentHash),
                     key: hex(SHA256.hash(Array(material.utf8))))
    }

    /// Makes `<cache>/snapshots` (0700) if needed and checks it is ours and private.
    static func prepareDirectory() throws {
        for (path, mode) in [(root, mode_t(0o755)), (directory, mode_t(0o700))] {
            if mkdir(path, mode) != 0 && errno != EEXIST {
                throw RuntimeError("mkdir \(path): \(BindShares.errorText(errno))")
            }
        }
        guard chmod(directory, 0o700) == 0 else { throw RuntimeError("chmod \(directory): \(BindShares.errorText(errno))") }
        try checkOwned(directory, directory: true)
    }

    /// A snapshot (or its directory) is used only if it is ours and nobody else may write it.
    static func checkOwned(_ path: String, directory: Bool) throws {
        var st = stat()
        guard lstat(path, &st) == 0 else { throw RuntimeError("\(path): \(BindShares.errorText(errno))") }
        guard st.st_mode & S_IFMT == (directory ? S_IFDIR : S_IFREG) else {
            throw RuntimeError("\(path): not a \(directory ? "directory" : "regular file")")
        }
        guard st.st_uid == geteuid() else { throw RuntimeError("\(path): owned by uid \(st.st_uid), not \(geteuid())") }
        guard st.st_mode & 0o077 == 0 else {
            throw RuntimeError("\(path): mode 0\(String(st.st_mode & 0o7777, radix: 8)), want no access for group or others")
        }
    }

    /// The machine for a container: restored from the matching snapshot when there is
    /// a valid one, booted otherwise; `log` says which and why.
    static func machine(_ configuration: MachineConfiguration, agent: String, log: (String) -> Void) throws -> Machine {
        if ProcessInfo.processInfo.environment["SM_RUNC_SNAPSHOT"] == "off" {
            log("booted: no snapshot (SM_RUNC_SNAPSHOT=off)")
            return try Machine(configuration)
        }
        guard access(directory, F_OK) == 0 else {
            log("booted: no snapshot (no \(directory); `sm-runc snapshot` makes one)")
            return try Machine(configuration)
        }
        let entry: Entry
        do { entry = try self.entry(for: configuration, agent: agent) } catch {
            log("booted: no snapshot (\(error))")
            return try Machine(configuration)
        }
        let path = entry.path
        guard access(path, F_OK) == 0 else {
            log("booted: no snapshot (none at \(path) for this kernel, agent and size; `sm-runc snapshot` makes it)")
            return try Machine(configuration)
        }
        do {
            try checkOwned(directory, directory: true)
            try checkOwned(path, directory: false)
            let began = Date()
            let machine = try Machine(configuration, snapshotPath: path, identity: entry.identity)
            log("started from snapshot \(path) (restore \(formatFixed(Date().timeIntervalSince(began) * 1000, digits: 2)) ms)")
            return machine
        } catch {
            log("booted: no snapshot (\(path) refused: \(error))")
            return try Machine(configuration)
        }
    }

    /// SHA-256 of a file's content. Hashing the kernel and agent takes seconds here
    /// (a debug build of a pure-Swift SHA-256), so a digest is remembered in
    /// `<cache>/snapshots/file-hashes` (ours, 0600) with the file's device, inode,
    /// size, mtime and ctime, and reused while they are the same.
    static func hashFile(_ path: String, what: String) throws -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw RuntimeError("\(what) \(path): \(BindShares.errorText(errno))") }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw RuntimeError("fstat \(path): \(BindShares.errorText(errno))") }
        let stamp = "\(st.st_dev) \(st.st_ino) \(st.st_size) \(st.st_mtim.tv_sec).\(st.st_mtim.tv_nsec) \(st.st_ctim.tv_sec).\(st.st_ctim.tv_nsec) \(path)"
        let memo = directory + "/file-hashes"
        var lines: [String] = []
        if (try? checkOwned(memo, directory: false)) != nil, let text = try? String(contentsOfFile: memo, encoding: .utf8) {
            lines = text.split(separator: "\n").map(String.init)
            for line in lines where line.dropFirst(65) == stamp {
                if let digest = unhex(line.prefix(64)) { return digest }
            }
        }
        let digest = try hashContent(fd, path: path)
        // Remembered only where the cache directory is ours already.
        if (try? checkOwned(directory, directory: true)) != nil {
            lines.removeAll { $0.hasSuffix(" " + path) }
            lines.append(hex(digest) + " " + stamp)
            let temporary = memo + ".tmp.\(getpid())"
            let out = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0o600)
            if out >= 0 {
                let bytes = Array((lines.suffix(64).joined(separator: "\n") + "\n").utf8)
                let ok = fchmod(out, 0o600) == 0 && bytes.withUnsafeBytes { write(out, $0.baseAddress, $0.count) } == bytes.count
                close(out)
                if !ok || rename(temporary, memo) != 0 { unlink(temporary) }
            }
        }
        return digest
    }

    private static func unhex<S: StringProtocol>(_ text: S) -> [UInt8]? {
        let chars = Array(text.utf8)
        guard chars.count == 64 else { return nil }
        var bytes: [UInt8] = []
        for i in stride(from: 0, to: 64, by: 2) {
            guard let byte = UInt8(String(decoding: chars[i..<i + 2], as: UTF8.self), radix: 16) else { return nil }
            bytes.append(byte)
        }
        return bytes
    }

    private static func hashContent(_ fd: Int32, path: String) throws -> [UInt8] {
        var hasher = SHA256()
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { throw RuntimeError("read \(path): \(BindShares.errorText(errno))") }
            if n == 0 { break }
            hasher.update(buffer[0..<n])
        }
        return hasher.finalize()
    }

    static func hex(_ bytes: [UInt8]) -> String {
        bytes.map { String(format: "%02x", $0) }.joined()
    }
}
