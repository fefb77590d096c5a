import CPosix
#if canImport(Glibc)
import Glibc
#endif

/// The VMM's jail, in the spirit of Firecracker's jailer and virtiofsd's sandbox: a
/// mount namespace of its own whose root is a small tmpfs holding only what the VMM
/// serves or talks through (the shares, its state directory with its sockets, its
/// log file) and `/proc/self/fd` (the file server reopens its inodes there). The
/// host's `/` is pivoted away and detached, so `/proc/<VMM>/root` is the jail and a
/// VMM that runs attacker-chosen code reaches nothing else by path.
///
/// **One fact, one home: a host path keeps its path in the jail** (`path(of:)`): each
/// entry is bind-mounted at its own absolute path inside the jail, so the shares'
/// roots, the state directory's sockets and the log file are the same strings before
/// and after the pivot, and nothing else in the VMM needs to know about the jail.
///
/// Every mount in the jail is `nosuid,nodev,noexec` from the VMM's view (the host's
/// own mounts are untouched): a device node or setuid file the guest makes through
/// the file server cannot be opened as a device, or executed, by the VMM. The
/// propagation from the host is `slave` (the host's unmounts still reach us, nothing
/// of ours reaches the host). Read-only entries are read-only mounts.
///
/// Two steps, so that what was opened before can be reopened inside: `build()` makes
/// the namespace and the tmpfs at `staging` with every entry bound under it (the
/// caller reopens its share roots at `staged(_:)`); `pivot()` makes it the root and
/// detaches the host's. Needs CAP_SYS_ADMIN (root); the capability is dropped after.
public struct Jail: Sendable {
    public struct Entry: Sendable, Equatable {
        /// An absolute host path (a directory, or a file), which is also its path in the jail.
        public var path: String
        /// With what is mounted below it on the host (MS_REC): the rootfs and the
        /// bind staging directory carry mounts; the state directory is bound alone.
        public var recursive: Bool
        public var readOnly: Bool
        public init(path: String, recursive: Bool, readOnly: Bool) {
            self.path = path
            self.recursive = recursive
            self.readOnly = readOnly
        }
    }

    public let entries: [Entry]
    /// An empty host directory to mount the jail's tmpfs on before the pivot. It must
    /// not be inside an entry bound recursively (the jail would contain itself).
    public let staging: String
    /// The working directory kept in the jail (an empty directory if it is not an
    /// entry), so relative paths given on the command line (`--log`) still resolve.
    public let workingDirectory: String?

    public init(entries: [Entry], staging: String, workingDirectory: String? = nil) {
        self.entries = entries
        self.staging = staging
        self.workingDirectory = workingDirectory
    }

    /// Where `hostPath` is in the jail: the same path (see the type's comment).
    @inline(__always) public static func path(of hostPath: String) -> String { hostPath }

    /// Where an entry is before the pivot.
    public func staged(_ hostPath: String) -> String { staging + Self.path(of: hostPath) }

    /// The entries to bind, in mount order (parents first), without those already
    /// visible through a recursive entry above them; a path with a "." or ".."
    /// component, or not absolute, is refused.
    static func plan(_ entries: [Entry]) throws(SystemCallError) -> [Entry] {
        var result: [Entry] = []
        for entry in entries.sorted(by: { $0.path < $1.path }) {
            let components = entry.path.split(separator: "/")
            guard entry.path.hasPrefix("/"), !components.contains(where: { $0 == "." || $0 == ".." }) else {
                throw SystemCallError(call: "jail", argument: entry.path, errno: .init(rawValue: EINVAL))
            }
            let normal = "/" + components.joined(separator: "/")
            if result.contains(where: { $0.path == normal }) { continue }
            if result.contains(where: { $0.recursive && (normal.hasPrefix($0.path + "/") || $0.path == "/") }) { continue }
            result.append(Entry(path: normal, recursive: entry.recursive, readOnly: entry.readOnly))
        }
        return result
    }

    /// Unshares the mount namespace, makes every mount a slave of the host's, mounts
    /// the jail's tmpfs at `staging` and binds every entry and `/proc/self/fd` into it.
    public func build() throws(SystemCallError) {
        let planned = try Self.plan(entries)
        // unshare(CLONE_NEWNS) moves only the calling thread (its nsproxy and root):
        // a thread started before would keep the host's root.
        let others = try Self.otherThreads()
        guard others.isEmpty else {
            throw SystemCallError(call: "jail", argument: "threads already running (\(others.joined(separator: ", "))) would keep the host's root",
                                  errno: .init(rawValue: EBUSY))
        }
        if mkdir(staging, 0o700) != 0 && errno != EEXIST { throw SystemCallError(call: "mkdir", argument: staging, errno: .init(rawValue: errno)) }
        try check("unshare", "CLONE_NEWNS") { cposix_unshare_mount_namespace() }
        try mount(nil, "/", flags: MS_SLAVE | MS_REC, what: "make / a slave")
        try mount("sm-vmm-jail", staging, type: "tmpfs", flags: MS_NOSUID | MS_NODEV | MS_NOEXEC, data: "mode=0755,size=64k,nr_inodes=1024")
        try mount(nil, staging, flags: MS_PRIVATE, what: "make the jail private")
        for entry in planned {
            let target = staged(entry.path)
            var st = stat()
            try check("stat", entry.path) { stat(entry.path, &st) }
            if st.st_mode & S_IFMT == S_IFDIR {
                try Self.makeDirectories(target)
            } else {
                try Self.makeDirectories(String(target[..<target.lastIndex(of: "/")!]))
                let fd = open(target, O_WRONLY | O_CREAT | O_CLOEXEC, 0o600)
                guard fd >= 0 || errno == EEXIST else { throw SystemCallError(call: "create", argument: target, errno: .init(rawValue: errno)) }
                if fd >= 0 { close(fd) }
            }
            try mount(entry.path, target, flags: MS_BIND | (entry.recursive ? MS_REC : 0), what: "bind \(entry.path) to \(target)")
        }
        // The working directory, so that relative paths (--root, --log) still resolve;
        // an empty directory unless it is (in) an entry.
        if let workingDirectory, workingDirectory.hasPrefix("/"), workingDirectory != "/" {
            try Self.makeDirectories(staged(workingDirectory))
        }
        // The file server and UnixSocket reopen descriptors by /proc/self/fd/N: our
        // own fd directory only (not /proc: no other process, no /proc/1/root).
        let fdDirectory = "/proc/\(getpid())/fd"
        try Self.makeDirectories(staging + "/proc/self/fd")
        try mount(fdDirectory, staging + "/proc/self/fd", flags: MS_BIND, what: "bind \(fdDirectory)")
        // nosuid,nodev,noexec on every mount in the jail, submounts too; ro where asked.
        for mountPoint in try Self.mountPoints(under: staging) where mountPoint != staging {
            var fs = statvfs()
            try check("statvfs", mountPoint) { statvfs(mountPoint, &fs) }
            let readOnly = planned.contains { $0.readOnly && staged($0.path) == mountPoint }
            let flags = MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV | MS_NOEXEC | (readOnly ? MS_RDONLY : 0)
            try mount(nil, mountPoint, flags: flags | Self.preservedFlags(UInt(fs.f_flag)), what: "remount \(mountPoint) nosuid,nodev,noexec")
        }
    }

    /// Makes the jail the root: pivot_root, the host's root detached, the tmpfs itself
    /// read-only. The staging directory on the host is removed if the jail sees it.
    public func pivot() throws(SystemCallError) {
        try check("chdir", staging) { chdir(staging) }
        try check("pivot_root", staging) { cposix_pivot_root(".", ".") }
        try check("umount2", "the host's root") { umount2(".", Int32(MNT_DETACH)) }
        try check("chdir", "/") { chdir("/") }
        try mount(nil, "/", flags: MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, what: "remount the jail read-only")
        // The empty mount point on the host, seen through a bound state directory.
        rmdir(Self.path(of: staging))
        if let workingDirectory {
            if chdir(Self.path(of: workingDirectory)) != 0 { _ = chdir("/") }
        }
    }

    /// Both steps.
    public func enter() throws(SystemCallError) {
        try build()
        try pivot()
    }

    // MARK: - helpers

    /// The names of this process's other threads, KVM's own workers (`kvm-*`, kernel
    /// code that never resolves a path for us) excepted.
    static func otherThreads() throws(SystemCallError) -> [String] {
        let me = pid_t(cposix_gettid())
        guard let directory = opendir("/proc/self/task") else {
            throw SystemCallError(call: "opendir", argument: "/proc/self/task", errno: .init(rawValue: errno))
        }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            guard let tid = pid_t(name), tid != me else { continue }
            var comm = "?"
            if let bytes = try? readToEnd("/proc/self/task/\(tid)/comm") { comm = String(decoding: bytes.prefix { $0 != 0x0a }, as: UTF8.self) }
            if comm.hasPrefix("kvm-") { continue }
            names.append("\(tid) \(comm)")
        }
        return names
    }

    private func mount(_ source: String?, _ target: String, type: String? = nil, flags: Int, data: String? = nil,
                       what: String? = nil) throws(SystemCallError) {
        let rc: Int32
        if let data {
            rc = data.withCString { Glibc.mount(source, target, type, UInt(flags), $0) }
        } else {
            rc = Glibc.mount(source, target, type, UInt(flags), nil)
        }
        guard rc == 0 else { throw SystemCallError(call: "mount", argument: what ?? target, errno: .init(rawValue: errno)) }
    }

    /// mkdir -p, 0755; what exists already is kept.
    static func makeDirectories(_ path: String) throws(SystemCallError) {
        var current = ""
        for component in path.split(separator: "/") {
            current += "/" + component
            if mkdir(current, 0o755) != 0 && errno != EEXIST {
                throw SystemCallError(call: "mkdir", argument: current, errno: .init(rawValue: errno))
            }
        }
    }

    /// The mount points at or below `path` in this namespace (/proc/self/mountinfo,
    /// field 5, octal escapes decoded), parents before children.
    static func mountPoints(under path: String) throws(SystemCallError) -> [String] {
        let bytes = try readToEnd("/proc/self/mountinfo")
        var points: [String] = []
        for line in bytes.split(separator: UInt8(ascii: "\n")) {
            let fields = line.split(separator: UInt8(ascii: " "))
            guard fields.count > 4 else { continue }
            let point = unescape(Array(fields[4]))
            if point == path || point.hasPrefix(path + "/") { points.append(point) }
        }
        return points
    }

    /// A file read until EOF (procfs files report size 0, so `readWholeFile` reads nothing).
    static func readToEnd(_ path: String) throws(SystemCallError) -> [UInt8] {
        let fd = try OwnedDescriptor.open(path, flags: O_RDONLY)
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 16384)
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd.rawValue, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { throw SystemCallError(call: "read", argument: path, errno: .init(rawValue: errno)) }
            if n == 0 { return bytes }
            bytes += buffer[0..<n]
        }
    }

    /// mountinfo's octal escapes (`\040` for a space...).
    static func unescape(_ field: [UInt8]) -> String {
        var out: [UInt8] = []
        var i = 0
        while i < field.count {
            if field[i] == UInt8(ascii: "\\"), i + 3 < field.count {
                let digits = field[(i + 1)...(i + 3)]
                if let value = UInt8(String(decoding: digits, as: UTF8.self), radix: 8) {
                    out.append(value)
                    i += 4
                    continue
                }
            }
            out.append(field[i])
            i += 1
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// statvfs flags a bind remount must keep (ST_* to MS_*; glibc names most of them
    /// only with _GNU_SOURCE, hence the numbers).
    static func preservedFlags(_ flags: UInt) -> Int {
        let pairs: [(st: UInt, ms: Int)] = [
            (1, MS_RDONLY), (1024, MS_NOATIME), (2048, MS_NODIRATIME), (4096, MS_RELATIME),
        ]
        return pairs.reduce(0) { flags & $1.st != 0 ? $0 | $1.ms : $0 }
    }
}
