#if canImport(Glibc)
import Glibc
#endif
import OCIBundle

/// A container's cgroup: one directory per mounted hierarchy (v1 and, on hybrid hosts,
/// the v2 tree too), which the VMM process joins as runc's init joins its own, so
/// engines find the container's limits, statistics and OOM events on the state pid.
public struct Cgroup: Sendable {
    public struct Directory: Codable, Equatable, Sendable {
        /// v1: the hierarchy's controllers joined with ","; v2: "".
        public var hierarchy: String
        public var path: String
    }

    public let hierarchies: Hierarchies
    public let directories: [Directory]

    /// - Parameter own: the cgroups of this process (/proc/self/cgroup), which a
    ///   relative path hangs below.
    public init(_ path: CgroupPath.Resolved, hierarchies: Hierarchies, own: [String: String]) {
        self.hierarchies = hierarchies
        directories = hierarchies.all.map { hierarchy in
            let inside: String
            switch path {
            case .absolute(let p): inside = p
            case .relative(let p): inside = (own[hierarchy.procKey] ?? "/") + "/" + p
            }
            // A mount whose top is not "/" (inside a cgroup namespace or a bind) shows
            // the tree from there.
            var relative = CgroupPath.clean("/" + inside)
            let root = CgroupPath.clean(hierarchy.root)
            if root != "/", relative == root || relative.hasPrefix(root + "/") { relative = String(relative.dropFirst(root.count)) }
            return Directory(hierarchy: hierarchy.procKey, path: CgroupPath.clean(hierarchy.mountPoint + relative))
        }
    }

    /// The directories a container recorded when its VMM joined (for `update`).
    public init(recorded directories: [Directory], hierarchies: Hierarchies) {
        self.hierarchies = hierarchies
        self.directories = directories
    }

    /// This host's hierarchies and the calling process's own cgroups.
    public static func forContainer(cgroupsPath: String?, id: String, systemd: Bool) throws -> Cgroup {
        let resolved = try CgroupPath.resolve(cgroupsPath, id: id, systemd: systemd)
        return Cgroup(resolved, hierarchies: try Hierarchies.current(), own: try ownCgroups(pid: nil))
    }

    /// /proc/PID/cgroup as hierarchy key → path ("" is v2).
    public static func ownCgroups(pid: pid_t?) throws -> [String: String] {
        let text = try readSmallFile(pid.map { "/proc/\($0)/cgroup" } ?? "/proc/self/cgroup")
        var result: [String: String] = [:]
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard fields.count == 3 else { continue }
            result[String(fields[1])] = String(fields[2])
        }
        return result
    }

    private func directory(for controller: String?) -> Directory? {
        guard let controller else { return directories.first { $0.hierarchy.isEmpty } }
        guard let hierarchy = hierarchies.v1(controller) else { return nil }
        return directories.first { $0.hierarchy == hierarchy.procKey }
    }

    /// Makes the directories (and, on v1 cpuset, copies the parent's cpus and mems into
    /// each new level, or no task could join; on v2, enables the controllers the
    /// resources need in each parent).
    public func create() throws {
        for directory in directories {
            var made: [String] = []
            var path = ""
            for component in directory.path.split(separator: "/") {
                path += "/" + component
                if mkdir(path, 0o755) == 0 { made.append(path) } else if errno != EEXIST {
                    throw CgroupError.system("mkdir", path, errno)
                }
            }
            if directory.hierarchy.split(separator: ",").contains("cpuset") {
                for level in made {
                    let parent = String(level[..<level.lastIndex(of: "/")!])
                    for file in ["cpuset.cpus", "cpuset.mems"] {
                        let current = try readSmallFile(level + "/" + file)
                        if current.trimmingWhitespace.isEmpty {
                            try write(try readSmallFile(parent + "/" + file).trimmingWhitespace, to: level + "/" + file)
                        }
                    }
                }
            }
        }
    }

    /// Enables `controllers` in the v2 tree from its top down to the leaf's parent.
    /// Controllers the kernel lacks, or a parent cannot delegate, are left alone: the
    /// writes that need them then fail by name.
    public func enableV2(_ controllers: [String]) {
        guard let hierarchy = hierarchies.v2, let leaf = directory(for: nil) else { return }
        let top = CgroupPath.clean(hierarchy.mountPoint)
        let below = leaf.path.dropFirst(top == "/" ? 0 : top.count).split(separator: "/").dropLast()
        var path = top
        for component in [""] + below.map(String.init) {
            if !component.isEmpty { path += "/" + component }
            let available = ((try? readSmallFile(path + "/cgroup.controllers")) ?? "").split(whereSeparator: \.isWhitespace).map(String.init)
            for controller in controllers where available.contains(controller) {
                try? write("+" + controller, to: path + "/cgroup.subtree_control")
            }
        }
    }

    /// Writes the resources (see `ResourceWrites`). v1 writes go to the hierarchy of
    /// their controller; a controller that is not mounted is an error only when the
    /// spec asked for its setting (the VMM's own device rules follow what exists).
    /// `vmmDevices: false` (update) leaves the device rules as they are.
    public func apply(_ resources: Resources?, vmmDevices: Bool = true) throws {
        if hierarchies.unifiedOnly {
            let writes = try ResourceWrites.v2(resources)
            enableV2(Array(Set(writes.map { String($0.file.prefix { $0 != "." }) })).filter { $0 != "cgroup" })
            try perform(writes)
        } else {
            try perform(ResourceWrites.v1(resources, vmmDevices: vmmDevices))
        }
    }

    private func perform(_ writes: [ControlWrite]) throws {
        for item in writes {
            guard let directory = directory(for: item.controller) else {
                // No devices hierarchy: nothing restricts device access (runc skips it too).
                if item.controller == "devices" { continue }
                throw CgroupError(description: "cgroup: \(item.file)=\(item.value): the \(item.controller ?? "v2") controller is not mounted")
            }
            let path = directory.path + "/" + item.file
            do { try write(item.value, to: path) } catch let error as CgroupError {
                if item.optional, access(path, F_OK) != 0 { continue }
                throw error
            }
        }
    }

    /// Moves `pid` (the whole process) into every directory.
    public func join(pid: pid_t) throws {
        for directory in directories { try write("\(pid)", to: directory.path + "/cgroup.procs") }
    }

    /// Removes the directories a container used (leaf only: parents such as
    /// /libpod_parent are the engine's). A cgroup still holding tasks is EBUSY for a
    /// moment after they exit; it is retried briefly. Returns what could not go.
    @discardableResult
    public static func remove(_ directories: [Directory]) -> [String] {
        var left: [String] = []
        for directory in directories {
            var tries = 0
            while rmdir(directory.path) != 0 {
                if errno == ENOENT { break }
                if errno == EBUSY, tries < 50 { tries += 1; usleep(20_000); continue }
                left.append("rmdir \(directory.path): \(String(cString: strerror(errno)).lowercased())")
                break
            }
        }
        return left
    }

    /// Reads a control file of the hierarchy carrying `controller` (nil: v2).
    public func read(_ file: String, controller: String?) -> String? {
        guard let directory = directory(for: controller) else { return nil }
        return try? readSmallFile(directory.path + "/" + file)
    }
}

/// Writes a control file in one write(2), as the kernel wants.
func write(_ value: String, to path: String) throws {
    let fd = open(path, O_WRONLY | O_CLOEXEC)
    guard fd >= 0 else { throw CgroupError.system("open", path, errno) }
    defer { close(fd) }
    let bytes = Array(value.utf8)
    let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
    guard n == bytes.count else { throw CgroupError.system("write \(value) to", path, n < 0 ? errno : EIO) }
}

extension String {
    var trimmingWhitespace: String {
        var s = Substring(self)
        while let c = s.first, c.isWhitespace { s.removeFirst() }
        while let c = s.last, c.isWhitespace { s.removeLast() }
        return String(s)
    }
}
