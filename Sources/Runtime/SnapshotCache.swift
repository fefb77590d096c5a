import Foundation
import AgentProtocol
import VMM

/// Snapshots of a booted guest waiting at the agent's quiescent point, one per
/// (kernel, agent, vCPU count, memory size, VMM version, device layout, kernel command
/// line; see `key`), in `<cache>/snapshots/<key>.snap` (cache: `SM_RUNC_CACHE`,
/// default /var/cache/sm-runc, as scripts/build-kernel.sh). The cache root is ours or root's and writable by no
/// one else, the directory 0700 and each file 0600, owned by us, each opened without
/// following a symlink and checked on the open fd (`openDirectory`, `openOwned`): a
/// snapshot is guest RAM and state that the VMM trusts.
///
/// Every container has the same device layout (`configuration`), so one snapshot fits
/// them all: the shares of a restored machine point at this container's rootfs and
/// bind staging directory, with this container's modes, which the snapshotted guest
/// has not mounted yet.
package enum SnapshotCache {
    package static var root: String {
        let value = ProcessInfo.processInfo.environment["SM_RUNC_CACHE"] ?? ""
        return value.isEmpty ? "/var/cache/sm-runc" : value
    }

    package static var directory: String { root + "/snapshots" }

    /// The VMM version a snapshot is tied to (besides the kernel and agent hashes).
    package static let vmmVersion = "sm-runc \(RuntimeOptions.version)"

    /// The fixed device layout of every container's machine: console, vsock, the
    /// agent's root share, the container's root and its bind staging directory (and
    /// the balloon the machine adds last).
    package static func configuration(kernel: String, guestRoot: String, size: GuestSize, rootfs: String, binds: MachineConfiguration.Share,
                              vsock: String) -> MachineConfiguration {
        var configuration = MachineConfiguration(kernelPath: kernel)
        configuration.memoryMiB = size.memoryMiB
        configuration.vcpuCount = size.vcpus
        configuration.shares = [
            // The agent's root: read-only, and its contents are part of the snapshot's
            // key, so the guest may cache its names for as long as it runs.
            .init(tag: GuestLayout.agentRootTag, hostPath: guestRoot, readOnly: true, cacheSeconds: 86_400),
            // Writable at the device: the agent makes mount points, then remounts the
            // root read-only when root.readonly says so (as runc does).
            .init(tag: GuestLayout.rootfsTag, hostPath: rootfs, readOnly: false),
            binds,
        ]
        configuration.rootShare = (GuestLayout.agentRootTag, GuestLayout.agentPath)
        configuration.vsockSocketPath = vsock
        // Always there, without a backend in the snapshot: a container's tap is given
        // after the restore, and one without a network keeps the same layout.
        configuration.network = .init()
        configuration.extraKernelParameters = AgentProtocol.kernelParameters
        return configuration
    }

    /// The layout of a container of `size` without a container: what a snapshot is
    /// keyed and made by (`make` points the rootfs and binds shares at empty private
    /// directories and the vsock at its own socket).
    package static func template(kernel: String, guestRoot: String, size: GuestSize) -> MachineConfiguration {
        configuration(kernel: kernel, guestRoot: guestRoot, size: size, rootfs: "/",
                      binds: BindShares.share(hostPath: "/", staged: 0), vsock: "/")
    }

    /// Where the snapshot for a configuration lives and what it must have been made with.
    /// Kept in a container's plan: decided at create, used by the VMM as it is.
    package struct Entry: Codable, Equatable, Sendable {
        package var key: String
        package var vmmVersion: String
        /// SHA-256 of the guest kernel and of the agent, hex.
        package var kernel: String
        package var agent: String

        package init(identity: SnapshotIdentity, key: String) {
            self.key = key
            vmmVersion = identity.vmmVersion
            kernel = SnapshotCache.hex(identity.kernel)
            agent = SnapshotCache.hex(identity.agent)
        }

        package var identity: SnapshotIdentity {
            SnapshotIdentity(vmmVersion: vmmVersion, kernel: SnapshotCache.unhex(kernel) ?? [], agent: SnapshotCache.unhex(agent) ?? [])
        }
        package var path: String { SnapshotCache.directory + "/" + key + ".snap" }
    }

    /// The entry for `configuration` with the agent at `agent` (hashes both files).
    package static func entry(for configuration: MachineConfiguration, agent: String) throws -> Entry {
        let kernelHash = try hashFile(configuration.kernelPath, what: "guest kernel")
        let agentHash = try hashFile(agent, what: "guest agent")
        let cpu: [UInt8]
        do { cpu = try X86CPUID.hostIdentity(KVMSystem()) } catch { throw RuntimeError("the host CPU for the snapshot key: \(error)") }
        return Entry(identity: SnapshotIdentity(vmmVersion: vmmVersion, kernel: kernelHash, agent: agentHash),
                     key: try key(for: configuration, kernel: kernelHash, agent: agentHash, cpu: cpu))
    }

    /// What `key` encodes, in what form: bumped whenever that changes, so that no
    /// snapshot is found under a key made by other rules. 2: share modes are not in
    /// the key (they are the file server's, set at restore), the device layout is.
    /// 3: the host CPU is (`X86CPUID.hostIdentity`). 4: the layout has a virtio-net
    /// device (always, without a tap in the snapshot). 5: it offers checksum and TSO
    /// offloads (the snapshotted driver negotiated them). 6: the command line is the
    /// machine's own (`MachineConfiguration.commandLine`, devices in their slots).
    package static let keyFormat = 6

    /// The cache key of the snapshot `configuration` starts from, with the kernel and
    /// agent of these SHA-256 digests, on the host CPU of digest `cpu`: a hash of what
    /// the snapshot holds and nothing else. The kernel and agent; the CPU the guest
    /// booted on (its kernel patched itself for it); the vCPUs and RAM; the VMM version; the virtio
    /// devices slot by slot (kind and share tag, `deviceLayout`); the PIT; the kernel
    /// command line the machine boots with (`MachineConfiguration.commandLine`). Not the shares' host paths nor their read-only flags: those are the
    /// host side of the file server, applied to the restored machine (a share the
    /// snapshotted guest has mounted is checked at restore: a handle open for writing
    /// on a share now read-only is refused). Nothing of a container: its binds share
    /// is read-write or not by its bind mounts (`BindShares.share`), mounted in the
    /// guest only after the wake.
    package static func key(for configuration: MachineConfiguration, kernel: [UInt8], agent: [UInt8], cpu: [UInt8]) throws -> String {
        let hostKind = configuration.hostKind ?? HostKind.detect()
        let layout = configuration.deviceLayout
        let commandLine = try configuration.commandLine(hostKind: hostKind)
        let material = [
            "key-format=\(keyFormat)", "kernel=" + hex(kernel), "agent=" + hex(agent), "cpu=" + hex(cpu), "vcpus=\(configuration.vcpuCount)",
            "memory=\(configuration.memoryMiB)", "vmm=\(vmmVersion)", "devices=" + layout.joined(separator: ","),
            "pit=\(configuration.pit)", "cmdline=" + commandLine.joined(separator: " "),
        ].joined(separator: "\n")
        return hex(SHA256.hash(Array(material.utf8)))
    }

    /// Makes `<cache>/snapshots` (0700) if needed and checks it is ours and private.
    package static func prepareDirectory() throws {
        _ = try openDirectory(create: true)
    }

    /// The snapshots directory of the cache at `root`, opened and checked; with
    /// `create`, the root (0755) and the directory (0700) are made where missing.
    ///
    /// The root may be reached through symlinks (the host chose SM_RUNC_CACHE), but
    /// must be owned by us or root and writable by nobody else: whoever may write it
    /// can put a symlink or their own files where the snapshots go. `snapshots` is
    /// opened without following a symlink, must be a directory of ours, and is made
    /// 0700 through its fd: a chmod by path could be led to any file.
    package static func openDirectory(root: String = root, create: Bool) throws -> OwnedDescriptor {
        if create && mkdir(root, 0o755) != 0 && errno != EEXIST {
            throw RuntimeError("mkdir \(root): \(BindShares.errorText(errno))")
        }
        let top = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard top >= 0 else { throw RuntimeError("open cache root \(root): \(BindShares.errorText(errno))") }
        let rootFD = OwnedDescriptor(adopting: top)
        var st = stat()
        guard fstat(rootFD.rawValue, &st) == 0 else { throw RuntimeError("fstat cache root \(root): \(BindShares.errorText(errno))") }
        guard st.st_uid == geteuid() || st.st_uid == 0 else {
            throw RuntimeError("cache root \(root): owned by uid \(st.st_uid), not by \(geteuid()) or root; refused (SM_RUNC_CACHE)")
        }
        guard st.st_mode & 0o022 == 0 else {
            throw RuntimeError("cache root \(root): mode 0\(String(st.st_mode & 0o7777, radix: 8)), writable by group or others; refused (SM_RUNC_CACHE)")
        }
        let path = root + "/snapshots"
        if create && mkdirat(rootFD.rawValue, "snapshots", 0o700) != 0 && errno != EEXIST {
            throw RuntimeError("mkdir \(path): \(BindShares.errorText(errno))")
        }
        let directory = try openOwned("snapshots", in: rootFD.rawValue, path: path, directory: true, privateMode: false)
        guard fstat(directory.rawValue, &st) == 0 else { throw RuntimeError("fstat \(path): \(BindShares.errorText(errno))") }
        if st.st_mode & 0o7777 != 0o700 {
            guard fchmod(directory.rawValue, 0o700) == 0 else { throw RuntimeError("fchmod \(path): \(BindShares.errorText(errno))") }
        }
        return directory
    }

    /// Opens `name` (relative to `directory`, or a path) without following a symlink,
    /// without blocking (a FIFO), and checks the open file itself: a directory or a
    /// regular file as `directory` says, ours, and (with `privateMode`) with no access
    /// for group or others. A snapshot (or its directory) is used only so: a snapshot
    /// is guest RAM and state the VMM trusts.
    package static func openOwned(_ name: String, in directory: Int32 = AT_FDCWD, path: String, directory isDirectory: Bool,
                          privateMode: Bool = true) throws -> OwnedDescriptor {
        let flags = O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | (isDirectory ? O_DIRECTORY : 0)
        let raw = openat(directory, name, flags)
        guard raw >= 0 else {
            let error = errno
            let hint = error == ELOOP || (isDirectory && error == ENOTDIR) ? " (a symlink is not followed)" : ""
            throw RuntimeError("open \(path): \(BindShares.errorText(error))\(hint)")
        }
        let fd = OwnedDescriptor(adopting: raw)
        var st = stat()
        guard fstat(fd.rawValue, &st) == 0 else { throw RuntimeError("fstat \(path): \(BindShares.errorText(errno))") }
        guard st.st_mode & S_IFMT == (isDirectory ? S_IFDIR : S_IFREG) else {
            throw RuntimeError("\(path): not a \(isDirectory ? "directory" : "regular file")")
        }
        guard st.st_uid == geteuid() else { throw RuntimeError("\(path): owned by uid \(st.st_uid), not \(geteuid())") }
        guard !privateMode || st.st_mode & 0o077 == 0 else {
            throw RuntimeError("\(path): mode 0\(String(st.st_mode & 0o7777, radix: 8)), want no access for group or others")
        }
        return fd
    }

    /// What `SM_RUNC_SNAPSHOT` asks for: `off` boots every container; `restore`
    /// restores from a snapshot that exists but never makes one; anything else (the
    /// default) also makes the snapshot on first use.
    package enum Policy: String { case off, restore, make }

    package static var policy: Policy {
        switch ProcessInfo.processInfo.environment["SM_RUNC_SNAPSHOT"] {
        case "off": return .off
        case "restore": return .restore
        default: return .make
        }
    }

    /// `create` and `run`, before they spawn the VMM: makes the snapshot this container
    /// would start from when the cache has none yet (first use; unless SM_RUNC_SNAPSHOT
    /// is `off` or `restore`). Done here, in the command's own process, not in the VMM:
    /// the maker's guest and threads are gone before the container's VMM exists, which
    /// confines itself with every thread it has. A failure is logged and the VMM boots.
    package static func makeOnFirstUse(_ plan: ContainerPlan, log: @escaping @Sendable (String) -> Void) {
        guard policy == .make, let machine = plan.machine, let entry = machine.snapshot else { return }
        do {
            try prepareDirectory()
            let configuration = template(kernel: machine.kernel, guestRoot: machine.guestRoot, size: plan.size)
            guard access(entry.path, F_OK) != 0 else { return }
            if let made = try makeOnce(like: configuration, entry: entry, log: log) {
                log("made snapshot \(entry.path) on first use: boot to the snapshot point \(formatFixed(made.bootSeconds, digits: 2)) s, " +
                    "capture \(formatFixed(made.captureSeconds * 1000, digits: 1)) ms")
            }
        } catch {
            log("no snapshot made: \(error)")
        }
    }

    /// The machine for a container: restored from the matching snapshot when there is
    /// a valid one, booted otherwise; `log` says which and why. A snapshot that fails
    /// its checks is set aside as `<key>.snap.refused` (the last one is kept for
    /// inspection) and this container boots; the next `create` makes a fresh one.
    /// `plan` is the container's machine as `create` resolved it: its snapshot entry
    /// (or why it has none) was decided there.
    package static func machine(_ configuration: MachineConfiguration, plan: ContainerPlan.Machine,
                                log: @escaping @Sendable (String) -> Void) throws -> Machine {
        let policy = self.policy
        guard let entry = plan.snapshot else {
            log("booted: no snapshot (\(plan.noSnapshot ?? "none planned"))")
            return try Machine(configuration)
        }
        guard access(directory, F_OK) == 0 else {
            log("booted: no snapshot (no \(directory); `sm-runc snapshot` makes one)")
            return try Machine(configuration)
        }
        let path = entry.path
        guard access(path, F_OK) == 0 else {
            log("booted: no snapshot (none at \(path) for this kernel, agent and size; `sm-runc snapshot` makes it)")
            return try Machine(configuration)
        }
        do {
            // The file checked is the file restored: opened once, checked by fstat.
            let snapshots = try openDirectory(create: false)
            let file = try openOwned(entry.key + ".snap", in: snapshots.rawValue, path: path, directory: false)
            let began = Date()
            let machine = try Machine(configuration, snapshotFile: file, path: path, identity: entry.identity)
            log("started from snapshot \(path) (restore \(formatFixed(Date().timeIntervalSince(began) * 1000, digits: 2)) ms)")
            // Most recently used first when pruning.
            _ = utimensat(AT_FDCWD, path, nil, 0)
            return machine
        } catch {
            log("booted: no snapshot (\(path) refused: \(error))")
            if policy == .make { setAside(path) }
            return try Machine(configuration)
        }
    }

    /// Keeps a refused snapshot out of the way (one per key) so that the next
    /// container makes a good one; nothing is lost for whoever wants to look at it.
    package static func setAside(_ path: String) {
        guard (try? openOwned(path, path: path, directory: false)) != nil else { return }
        _ = rename(path, path + ".refused")
    }

    /// How many snapshots (of other kernels, agents or sizes) the cache keeps.
    package static let keptSnapshots = 4

    /// Makes the snapshot for `entry` unless another process made it meanwhile (one
    /// maker at a time, under an flock of `<dir>/make.lock`); nil when it was there.
    /// The guest is booted from `configuration`'s kernel and agent with the same
    /// devices, but the rootfs and binds shares point at empty private directories
    /// and the vsock at its own socket: nothing of the container is in the snapshot.
    package static func makeOnce(like configuration: MachineConfiguration, entry: Entry,
                         log: @escaping @Sendable (String) -> Void) throws -> SnapshotReport? {
        let lockPath = directory + "/make.lock"
        let lock = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard lock >= 0 else { throw RuntimeError("open \(lockPath): \(BindShares.errorText(errno))") }
        defer { close(lock) }
        while flock(lock, LOCK_EX) != 0 {
            guard errno == EINTR else { throw RuntimeError("flock \(lockPath): \(BindShares.errorText(errno))") }
        }
        if access(entry.path, F_OK) == 0 { return nil }
        let report = try make(like: configuration, entry: entry, log: log)
        prune(keeping: entry.path)
        return report
    }

    /// Boots a guest like `configuration` to the agent's snapshot point and writes the
    /// snapshot at `entry.path` (see `makeOnce`).
    package static func make(like configuration: MachineConfiguration, entry: Entry,
                     log: @escaping @Sendable (String) -> Void) throws -> SnapshotReport {
        var template = Array("\(directory)/make.XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else {
            throw RuntimeError("mkdtemp in \(directory): \(BindShares.errorText(errno))")
        }
        let work = String(cString: made)
        defer {
            for name in ["rootfs", "binds"] { rmdir(work + "/" + name) }
            unlink(work + "/vsock")
            unlink(work + "/vsock_\(AgentProtocol.vsockPort)")
            rmdir(work)
        }
        var maker = configuration
        for (i, share) in maker.shares.enumerated() where share.tag == GuestLayout.rootfsTag || share.tag == GuestLayout.bindsTag {
            let empty = work + "/" + share.tag
            guard mkdir(empty, 0o700) == 0 else { throw RuntimeError("mkdir \(empty): \(BindShares.errorText(errno))") }
            maker.shares[i].hostPath = empty
        }
        maker.vsockSocketPath = work + "/vsock"
        maker.snapshotPoint = true
        maker.deadlineSeconds = ContainerHost.bootTimeout
        maker.confineThread = nil
        maker.log = log
        maker.consoleOutput = { log(String(decoding: $0, as: UTF8.self)) }
        let report = try Machine(maker).bootAndSnapshot(to: entry.path, identity: entry.identity)
        _ = try openOwned(entry.path, path: entry.path, directory: false)
        return report
    }

    /// Removes all but the `keptSnapshots` most recently used snapshots (`kept` is
    /// always one of them), refused ones beyond the newest, and what crashed makers
    /// left behind (temporary files and work directories older than an hour).
    package static func prune(keeping kept: String) {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return }
        var snapshots: [(path: String, used: Int)] = []
        var refused: [(path: String, used: Int)] = []
        let now = time(nil)
        for name in names {
            let path = directory + "/" + name
            var st = stat()
            guard lstat(path, &st) == 0, st.st_uid == geteuid() else { continue }
            let used = st.st_mtim.tv_sec
            if name.hasSuffix(".snap"), st.st_mode & S_IFMT == S_IFREG {
                if path != kept { snapshots.append((path, used)) }
            } else if name.hasSuffix(".snap.refused") {
                refused.append((path, used))
            } else if now - used > 3600, name.contains(".snap.tmp.") {
                unlink(path)
            } else if now - used > 3600, name.hasPrefix("make."), st.st_mode & S_IFMT == S_IFDIR {
                for sub in ["rootfs", "binds"] { rmdir(path + "/" + sub) }
                unlink(path + "/vsock")
                unlink(path + "/vsock_\(AgentProtocol.vsockPort)")
                rmdir(path)
            }
        }
        for old in snapshots.sorted(by: { $0.used > $1.used }).dropFirst(keptSnapshots - 1) { unlink(old.path) }
        for old in refused.sorted(by: { $0.used > $1.used }).dropFirst(1) { unlink(old.path) }
    }

    /// SHA-256 of a file's content. Hashing the kernel and agent takes seconds here
    /// (a debug build of a pure-Swift SHA-256), so a digest is remembered in
    /// `<cache>/snapshots/file-hashes` (ours, 0600) with the file's device, inode,
    /// size, mtime and ctime, and reused while they are the same.
    package static func hashFile(_ path: String, what: String) throws -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw RuntimeError("\(what) \(path): \(BindShares.errorText(errno))") }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw RuntimeError("fstat \(path): \(BindShares.errorText(errno))") }
        let stamp = "\(st.st_dev) \(st.st_ino) \(st.st_size) \(st.st_mtim.tv_sec).\(st.st_mtim.tv_nsec) \(st.st_ctim.tv_sec).\(st.st_ctim.tv_nsec) \(path)"
        let memo = directory + "/file-hashes"
        var lines: [String] = []
        if let file = try? openOwned(memo, path: memo, directory: false), let bytes = try? readWholeFile(file.rawValue, path: memo) {
            let text = String(decoding: bytes, as: UTF8.self)
            lines = text.split(separator: "\n").map(String.init)
            for line in lines where line.dropFirst(65) == stamp {
                if let digest = unhex(line.prefix(64)) { return digest }
            }
        }
        let digest = try hashContent(fd, path: path)
        // Remembered only where the cache directory is ours already.
        if (try? openDirectory(create: false)) != nil {
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

    static func unhex<S: StringProtocol>(_ text: S) -> [UInt8]? {
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

    package static func hex(_ bytes: [UInt8]) -> String {
        bytes.map { String(format: "%02x", $0) }.joined()
    }
}
