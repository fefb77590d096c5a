import Foundation
import OCIBundle
import VMM
import AgentProtocol

/// Bind mounts of host paths, as one extra virtio-fs share.
///
/// The guest cannot see the host, so each bind mount's source is staged on the host
/// in `<state>/binds/<n>` (n = 0, 1, ... in the order of the binds in `mounts`): an
/// empty directory or an empty file with the source bind-mounted onto it. `ro` binds
/// are remounted read-only on the host, so the host kernel refuses writes whatever
/// the guest does. `<state>/binds` is itself a private bind mount, and so is each
/// entry: nothing mounted there propagates to other mount namespaces, and nothing
/// propagates back into the sources; its top is read-only. The directory is shared as tag `binds`; the
/// agent mounts it at /run/sm-binds (outside the container's root) and bind-mounts
/// `/run/sm-binds/<n>` to each destination. A file source gets an entry of its own,
/// so its siblings on the host are not in the share.
///
/// Teardown (`release`) detaches every mount and removes the entries with unlink and
/// rmdir only: a recursive delete through a still-mounted entry would delete the
/// host's files.
package enum BindShares {
    package static let tag = GuestLayout.bindsTag
    package static let guestDirectory = GuestLayout.bindsDirectory
    package static let directoryName = "binds"

    /// The bind mounts of a spec as `create` resolves them (kept in the plan): each
    /// source absolute and present, in the slot it is staged in, and the spec's
    /// mounts as the agent gets them (each bind's source `/run/sm-binds/<slot>`).
    package struct Plan: Codable, Equatable, Sendable {
        package struct Staged: Codable, Equatable, Sendable {
            /// The host path, resolved against the bundle.
            package var source: String
            package var destination: String
            package var options: [String]
        }
        /// Slot n is `staged[n]`.
        package var staged: [Staged]
        package var mounts: [Mount]
    }

    package struct Prepared {
        /// The share to add to the machine (`share(hostPath:staged:)`). Always there, so
        /// that every container has the same device layout (one snapshot fits all, see
        /// `SnapshotCache`): with no bind mounts, an empty directory shared read-only,
        /// which the agent does not mount.
        package var share: MachineConfiguration.Share
        /// The spec's mounts, each bind's source now `/run/sm-binds/<n>`.
        package var mounts: [Mount]
    }

    /// The binds share of a machine, serving `hostPath` with `staged` bind mounts in
    /// it: read-write when there are any (each entry is a host mount with the bind's
    /// own ro/rw, the top is read-only on the host), read-only when there are none
    /// (the agent does not mount it; nothing for the guest to write). The mode is the
    /// host side of the file server, set on the restored machine: no part of the
    /// snapshot or its key (`SnapshotCache.key`).
    package static func share(hostPath: String, staged: Int) -> MachineConfiguration.Share {
        .init(tag: tag, hostPath: hostPath, readOnly: staged == 0)
    }

    /// Whether `mount` is a bind mount: type "bind", or "bind"/"rbind" among its options.
    package static func isBind(_ mount: Mount) -> Bool {
        mount.type == "bind" || (mount.options ?? []).contains { $0 == "bind" || $0 == "rbind" }
    }

    package static func directory(_ stateDirectory: String) -> String { stateDirectory + "/" + directoryName }

    /// The plan for the bind mounts of `mounts` (a relative source is relative to
    /// `bundle`, as the runtime spec says): a missing source is an error in runc's
    /// words ("mount /src to /dst: no such file or directory"), at create.
    package static func plan(mounts: [Mount], bundle: String) throws -> Plan {
        var rewritten = mounts
        var staged: [Plan.Staged] = []
        for (i, mount) in mounts.enumerated() where isBind(mount) {
            guard let source = mount.source, !source.isEmpty else {
                throw RuntimeError("mount to \(mount.destination): a bind mount needs a source")
            }
            let path = Path.resolve(source, against: bundle)
            var st = stat()
            guard stat(path, &st) == 0 else {
                throw RuntimeError("mount \(path) to \(mount.destination): \(errorText(errno))")
            }
            rewritten[i].source = guestDirectory + "/" + String(staged.count)
            staged.append(.init(source: path, destination: mount.destination, options: mount.options ?? []))
        }
        return Plan(staged: staged, mounts: rewritten)
    }

    /// Stages the plan's bind mounts under `<stateDirectory>/binds`. On failure what
    /// was done is undone and the error says which mount failed, in runc's words.
    package static func prepare(_ plan: Plan, stateDirectory: String) throws -> Prepared {
        let binds = directory(stateDirectory)
        guard mkdir(binds, 0o700) == 0 else {
            throw RuntimeError("mkdir \(binds): \(errorText(errno))")
        }
        guard !plan.staged.isEmpty else {
            return Prepared(share: share(hostPath: binds, staged: 0), mounts: plan.mounts)
        }
        do {
            // A private mount of its own first, so that the binds made in it are
            // never propagated to a peer of the mount it lives on.
            try mountOrThrow(binds, binds, flags: UInt(MS_BIND), what: "mount \(binds) to \(binds)")
            try mountOrThrow(nil, binds, flags: UInt(MS_PRIVATE), what: "make \(binds) private")
            for (index, bind) in plan.staged.enumerated() {
                let source = bind.source
                let entry = binds + "/" + String(index)
                let what = "mount \(source) to \(bind.destination)"
                var st = stat()
                guard stat(source, &st) == 0 else { throw RuntimeError("\(what): \(errorText(errno))") }
                if st.st_mode & S_IFMT == S_IFDIR {
                    guard mkdir(entry, 0o700) == 0 else { throw RuntimeError("\(what): mkdir \(entry): \(errorText(errno))") }
                } else {
                    let fd = open(entry, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o600)
                    guard fd >= 0 else { throw RuntimeError("\(what): create \(entry): \(errorText(errno))") }
                    close(fd)
                }
                let options = bind.options
                let recursive = options.contains("rbind")
                try mountOrThrow(source, entry, flags: UInt(MS_BIND) | (recursive ? UInt(MS_REC) : 0), what: what)
                try mountOrThrow(nil, entry, flags: UInt(MS_PRIVATE | MS_REC), what: "\(what): make private")
                if options.contains("ro") {
                    // Keep the flags the bind already has (nosuid, nodev...): a remount
                    // that drops a locked one would fail.
                    var sv = statvfs()
                    let kept = statvfs(entry, &sv) == 0 ? preservedFlags(UInt(sv.f_flag)) : 0
                    try mountOrThrow(nil, entry, flags: UInt(MS_REMOUNT | MS_BIND | MS_RDONLY) | kept,
                                     what: "\(what): remount read-only")
                }
            }
            // The share's top is read-only (each entry is a mount with its own flags):
            // the guest cannot add, rename or remove entries, so `release` finds
            // only the ones made here.
            var sv = statvfs()
            let kept = statvfs(binds, &sv) == 0 ? preservedFlags(UInt(sv.f_flag)) : 0
            try mountOrThrow(nil, binds, flags: UInt(MS_REMOUNT | MS_BIND | MS_RDONLY) | kept, what: "remount \(binds) read-only")
        } catch {
            release(stateDirectory: stateDirectory)
            throw error
        }
        return Prepared(share: share(hostPath: binds, staged: plan.staged.count), mounts: plan.mounts)
    }

    /// Undoes `prepare`: detaches every mount under `<stateDirectory>/binds` and the
    /// directory's own, then removes the entries and the directory with unlink/rmdir
    /// only (an entry that is somehow still mounted makes them fail: nothing of the
    /// host is deleted). Idempotent; safe after a crash at any point of `prepare`.
    package static func release(stateDirectory: String) {
        let binds = directory(stateDirectory)
        for name in entries(binds) { detach(binds + "/" + name) }
        detach(binds)
        // Listed again, now that nothing is mounted: the entries themselves.
        for name in entries(binds) {
            let entry = binds + "/" + name
            if rmdir(entry) != 0 && errno == ENOTDIR { unlink(entry) }
        }
        rmdir(binds)
    }

    /// Removes the state directory: `release`, then the named files, then rmdir. Never
    /// recursive: an unknown entry left behind keeps the directory (and is reported).
    package static func removeStateDirectory(_ stateDirectory: String, files: [String], log: (String) -> Void = { _ in }) {
        release(stateDirectory: stateDirectory)
        for file in files { unlink(stateDirectory + "/" + file) }
        if rmdir(stateDirectory) != 0 && errno != ENOENT {
            log("rmdir \(stateDirectory): \(errorText(errno))")
        }
    }

    // MARK: - helpers

    private static func mountOrThrow(_ source: String?, _ target: String, flags: UInt, what: String) throws {
        guard mount(source, target, nil, flags, nil) == 0 else {
            throw RuntimeError("\(what): \(errorText(errno))")
        }
    }

    /// Unmounts everything stacked on `path` (lazily, never following a symlink).
    private static func detach(_ path: String) {
        var count = 0
        while count < 64, umount2(path, Int32(MNT_DETACH | UMOUNT_NOFOLLOW)) == 0 { count += 1 }
    }

    /// The names in `directory` (none when it cannot be read).
    private static func entries(_ directory: String) -> [String] {
        guard let dir = opendir(directory) else { return [] }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    /// statvfs flags a read-only bind remount must keep (ST_* to MS_*; glibc names
    /// all but ST_NOSUID only with _GNU_SOURCE, hence the numbers).
    private static func preservedFlags(_ flags: UInt) -> UInt {
        let pairs: [(st: UInt, ms: Int)] = [
            (2, MS_NOSUID), (4, MS_NODEV), (8, MS_NOEXEC), (1024, MS_NOATIME), (2048, MS_NODIRATIME), (4096, MS_RELATIME),
        ]
        return pairs.reduce(0) { flags & $1.st != 0 ? $0 | UInt($1.ms) : $0 }
    }

    /// `strerror` in Go's spelling, as runc prints it: "no such file or directory".
    package static func errorText(_ code: Int32) -> String {
        let message = String(cString: strerror(code))
        guard let first = message.first else { return "errno \(code)" }
        return first.lowercased() + message.dropFirst()
    }
}
