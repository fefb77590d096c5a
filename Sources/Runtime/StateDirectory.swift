import Foundation
import Cgroups
import OCIBundle
import VMM

/// What sm-runc records about a container in `<root>/<id>/state.json`. The VMM
/// process writes it (atomically, by rename) at each transition; `state`, `list`,
/// `start`, `kill` and `delete` read it.
package struct ContainerRecord: Codable, Equatable {
    package var ociVersion = "1.2.0"
    package var id: String
    /// The VMM process: the pid in `--pid-file`, the process engines wait on.
    package var pid: Int32
    /// Its start time (field 22 of /proc/<pid>/stat), so a reused pid is not taken
    /// for the container.
    package var pidStartTime: UInt64
    package var status: ContainerStatus
    package var bundle: String
    package var rootfs: String
    package var created: String
    package var owner: String
    package var annotations: [String: String]?
    /// Set once the process ended: its exit code, or the signal that killed it.
    package var exitCode: Int32?
    package var exitSignal: Int32?
    /// The spec's hooks: poststop runs at delete, when config.json may be gone.
    package var hooks: Hooks?
    /// The cgroup directories the VMM joined (one per hierarchy); removed at delete.
    package var cgroup: [Cgroup.Directory]?
}

/// The OCI state document as runc prints it (`state`, `list --format json`, hooks' stdin).
package struct StateDocument: Encodable {
    package var ociVersion: String
    package var id: String
    package var pid: Int32
    package var status: String
    package var bundle: String
    package var rootfs: String
    package var created: String
    package var owner: String
    package var annotations: [String: String]?

    package init(_ record: ContainerRecord, status: ContainerStatus) {
        ociVersion = record.ociVersion
        id = record.id
        pid = status == .stopped ? 0 : record.pid
        self.status = status.rawValue
        bundle = record.bundle
        rootfs = record.rootfs
        created = record.created
        owner = record.owner
        annotations = record.annotations
    }
}

/// `<root>/<id>`: the container's state directory. Holds only entries sm-runc made
/// (plan.json, state.json, the sockets, the bind-mount staging directory), and is
/// removed entry by entry, never recursively: a staging entry can be a mount of a
/// host directory.
package struct StateDirectory {
    package let root: String
    package let id: String
    package var path: String { root + "/" + id }
    package var recordPath: String { path + "/state.json" }
    /// The container's plan (`ContainerPlan`): written once by `create`, read by the
    /// VMM process and `exec`.
    package var planPath: String { path + "/plan.json" }
    /// The VMM's hybrid vsock socket; the agent's port is `<agentSocket>_1024`.
    package var agentSocket: String { path + "/agent.sock" }
    package var controlSocket: String { path + "/control.sock" }

    package init(root: String, id: String) {
        self.root = root
        self.id = id
    }

    /// Makes the directory; an existing one is runc's "already exists" error.
    package static func create(root: String, id: String) throws -> StateDirectory {
        if mkdir(root, 0o711) != 0 && errno != EEXIST { throw RuntimeError.system("mkdir", root) }
        let directory = StateDirectory(root: root, id: id)
        guard mkdir(directory.path, 0o711) == 0 else {
            if errno == EEXIST { throw RuntimeError("container with given ID already exists: \(id)") }
            throw RuntimeError.system("mkdir", directory.path)
        }
        return directory
    }

    /// The directory of an existing container, or runc's "does not exist".
    package static func existing(root: String, id: String) throws -> StateDirectory {
        try validateContainerID(id)
        let directory = StateDirectory(root: root, id: id)
        var info = stat()
        guard stat(directory.path, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR else { throw RuntimeError.notFound(id) }
        return directory
    }

    package func load() throws -> ContainerRecord {
        let bytes: [UInt8]
        do { bytes = try readWholeFile(recordPath) } catch { throw RuntimeError.notFound(id) }
        return try OCIJSON.decode(ContainerRecord.self, from: bytes, file: recordPath)
    }

    package func save(_ record: ContainerRecord) throws {
        try Self.writeAtomically(try OCIJSON.encodeCompact(record), to: recordPath)
    }

    package func savePlan(_ plan: ContainerPlan) throws {
        try Self.writeAtomically(try OCIJSON.encodeCompact(plan), to: planPath)
    }

    /// The plan `create` saved. Its absence is an error, never a reason to read the
    /// bundle again.
    package func loadPlan() throws -> ContainerPlan {
        try OCIJSON.decode(ContainerPlan.self, from: try readWholeFile(planPath, limit: 16 << 20), file: planPath)
    }

    /// Writes `<path>.tmp` (0600) and renames it to `path`: a reader sees the old
    /// content or the new, never part of it.
    private static func writeAtomically(_ bytes: [UInt8], to path: String) throws {
        let temporary = path + ".tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw RuntimeError.system("open", temporary) }
        defer { close(fd) }
        guard bytes.withUnsafeBytes({ write(fd, $0.baseAddress, $0.count) }) == bytes.count else {
            throw RuntimeError.system("write", temporary)
        }
        guard rename(temporary, path) == 0 else { throw RuntimeError.system("rename", temporary) }
    }

    /// The status now: what the VMM recorded while it lives, `stopped` once it is gone
    /// (exited, a zombie nobody reaped, or its pid reused by another process).
    package func status(of record: ContainerRecord) -> ContainerStatus {
        guard record.status != .stopped, record.pid > 0 else { return .stopped }
        guard ProcessIdentity.startTime(of: record.pid) == record.pidStartTime else { return .stopped }
        return record.status
    }

    /// Removes what sm-runc put here. Bind staging entries are unmounted first (by
    /// `BindShares.release`); a directory that is not empty is left and reported.
    package func remove(reporter: Reporter? = nil) throws {
        BindShares.release(stateDirectory: path)
        // The cgroup the VMM joined: its leaf directories (the engine owns the parents).
        if let directories = (try? load())?.cgroup {
            for failure in Cgroup.remove(directories) { reporter?.warning(failure) }
        }
        for name in ["state.json", "state.json.tmp", "plan.json", "plan.json.tmp", "control.sock", "agent.sock", "agent.sock_1024"] {
            unlink(path + "/" + name)
        }
        // A socket's private bind directory (`UnixSocket.listen`), left by a VMM killed
        // while it made the socket.
        for name in (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? [] where UnixSocket.isBindDirectory(name) {
            unlink(path + "/" + name + "/" + UnixSocket.boundName)
            rmdir(path + "/" + name)
        }
        guard rmdir(path) == 0 || errno == ENOENT else { throw RuntimeError.system("remove", path) }
    }
}

/// Identity of a host process beyond its pid.
package enum ProcessIdentity {
    /// Field 22 of /proc/<pid>/stat, or nil when the pid is gone or a zombie.
    package static func startTime(of pid: Int32) -> UInt64? {
        guard let bytes = try? readWholeFile("/proc/\(pid)/stat"), let close = bytes.lastIndex(of: UInt8(ascii: ")")) else {
            return nil
        }
        let fields = bytes[(close + 1)...].split(separator: UInt8(ascii: " "))
        // fields[0] is field 3 (state); field 22 is fields[19].
        guard fields.count > 19, let state = fields[0].first, state != UInt8(ascii: "Z"), state != UInt8(ascii: "X") else {
            return nil
        }
        return UInt64(String(decoding: fields[19], as: UTF8.self))
    }

    package static var ownStartTime: UInt64 { startTime(of: getpid()) ?? 0 }
}

/// The whole of a small file (state records, /proc entries).
package func readWholeFile(_ path: String, limit: Int = 1 << 20) throws -> [UInt8] {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw RuntimeError.system("open", path) }
    defer { close(fd) }
    return try readWholeFile(fd, path: path, limit: limit)
}

/// The rest of the open file `fd` (`path` names it in errors).
package func readWholeFile(_ fd: Int32, path: String, limit: Int = 1 << 20) throws -> [UInt8] {
    var result: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 16 << 10)
    while result.count <= limit {
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 && errno == EINTR { continue }
        guard n >= 0 else { throw RuntimeError.system("read", path) }
        if n == 0 { return result }
        result += buffer[0..<n]
    }
    throw RuntimeError("read \(path): larger than \(limit) bytes")
}
