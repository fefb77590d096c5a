#if canImport(Glibc)
import Glibc
#endif

/// One mounted cgroup hierarchy: a v1 hierarchy (its controllers, or a named one such
/// as `name=systemd`) or the v2 unified one.
public struct Hierarchy: Equatable, Sendable {
    public enum Version: Equatable, Sendable { case v1, v2 }
    public var version: Version
    /// Where it is mounted, e.g. /sys/fs/cgroup/memory.
    public var mountPoint: String
    /// The cgroup the mount shows as its top (field 4 of mountinfo; "/" on a host).
    public var root: String
    /// v1: the controllers (and `name=` options) the hierarchy carries; v2: empty.
    public var controllers: [String]

    public init(version: Version, mountPoint: String, root: String = "/", controllers: [String] = []) {
        self.version = version
        self.mountPoint = mountPoint
        self.root = root
        self.controllers = controllers
    }

    /// The key under which /proc/PID/cgroup lists this hierarchy ("" for v2).
    var procKey: String { version == .v2 ? "" : controllers.joined(separator: ",") }
}

/// The cgroup hierarchies of this host: v1 only, hybrid (v1 controllers plus a v2
/// mount without them, as on these build hosts) or v2 only.
public struct Hierarchies: Equatable, Sendable {
    public var all: [Hierarchy]

    public init(_ all: [Hierarchy]) { self.all = all }

    /// Reads /proc/self/mountinfo.
    public static func current() throws -> Hierarchies {
        Hierarchies(mountinfo: try readSmallFile("/proc/self/mountinfo"))
    }

    /// Parses mountinfo lines (proc(5)): "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [TAGS] - FSTYPE SOURCE SUPEROPTS".
    public init(mountinfo: String) {
        var found: [Hierarchy] = []
        var seen: Set<String> = []
        for line in mountinfo.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
            guard let dash = fields.firstIndex(of: "-"), dash >= 6, fields.count >= dash + 4 else { continue }
            let fsType = fields[dash + 1]
            let root = Self.unescape(fields[3]), mountPoint = Self.unescape(fields[4])
            switch fsType {
            case "cgroup2":
                guard seen.insert("v2").inserted else { continue }
                found.append(Hierarchy(version: .v2, mountPoint: mountPoint, root: root))
            case "cgroup":
                let known = ["cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "net_cls", "net_prio",
                             "blkio", "perf_event", "hugetlb", "pids", "rdma", "misc"]
                let controllers = fields[dash + 3].split(separator: ",").map(String.init)
                    .filter { known.contains($0) || $0.hasPrefix("name=") }
                let key = controllers.joined(separator: ",")
                guard !controllers.isEmpty, seen.insert(key).inserted else { continue }
                found.append(Hierarchy(version: .v1, mountPoint: mountPoint, root: root, controllers: controllers))
            default:
                continue
            }
        }
        all = found
    }

    /// True when no v1 controller is mounted: everything goes through the v2 tree.
    public var unifiedOnly: Bool { !all.isEmpty && all.allSatisfy { $0.version == .v2 } }

    /// The v1 hierarchy carrying `controller`, if mounted.
    public func v1(_ controller: String) -> Hierarchy? {
        all.first { $0.version == .v1 && $0.controllers.contains(controller) }
    }

    public var v2: Hierarchy? { all.first { $0.version == .v2 } }

    /// mountinfo escapes space, tab, newline and backslash as \ooo.
    static func unescape(_ field: String) -> String {
        guard field.contains("\\") else { return field }
        var bytes: [UInt8] = []
        var utf8 = Array(field.utf8)[...]
        while let byte = utf8.popFirst() {
            if byte == UInt8(ascii: "\\"), utf8.count >= 3,
               let value = UInt8(String(decoding: utf8.prefix(3), as: UTF8.self), radix: 8) {
                bytes.append(value)
                utf8 = utf8.dropFirst(3)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// Reads a small kernel file (mountinfo, /proc/PID/cgroup, a cgroup control file) to EOF.
func readSmallFile(_ path: String, limit: Int = 1 << 20) throws -> String {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw CgroupError.system("open", path, errno) }
    defer { close(fd) }
    var result: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 16 << 10)
    while result.count <= limit {
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 && errno == EINTR { continue }
        guard n >= 0 else { throw CgroupError.system("read", path, errno) }
        if n == 0 { return String(decoding: result, as: UTF8.self) }
        result += buffer[0..<n]
    }
    throw CgroupError(description: "read \(path): larger than \(limit) bytes")
}

/// An error naming the call and its argument, in runc's words where it has them.
public struct CgroupError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(description: String) { self.description = description }

    static func system(_ call: String, _ argument: String, _ code: Int32) -> CgroupError {
        CgroupError(description: "\(call) \(argument): \(String(cString: strerror(code)).lowercased())")
    }
}
