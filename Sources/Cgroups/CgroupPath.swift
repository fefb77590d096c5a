/// Where a container's cgroup lives, from `linux.cgroupsPath` as runc reads it.
public enum CgroupPath {
    /// The path below each hierarchy's top, or relative to the runtime's own cgroup.
    public enum Resolved: Equatable, Sendable {
        /// "/a/b": the same path in every hierarchy, from its top.
        case absolute(String)
        /// "a/b": below the cgroup this process is in, hierarchy by hierarchy.
        case relative(String)
    }

    /// - `cgroupsPath` absolute ("/libpod_parent/libpod-ID", containerd's "/NS/ID"): as is.
    /// - relative: below the runtime's own cgroup; absent: the container id, the same way.
    /// - with `--systemd-cgroup`, "slice:prefix:name" becomes the path systemd would give
    ///   the scope ("/system.slice/prefix-name.scope"; "a-b.slice" nests in "a.slice").
    ///   sm-runc writes it through cgroupfs: it does not ask systemd for the unit.
    /// `..` never climbs above the top.
    public static func resolve(_ cgroupsPath: String?, id: String, systemd: Bool) throws -> Resolved {
        let path = cgroupsPath ?? ""
        if systemd {
            if path.isEmpty { return .absolute("/system.slice/sm-runc-\(id).scope") }
            let parts = path.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
            guard parts.count == 3 else {
                throw CgroupError(description: "expected cgroupsPath to be of format \"slice:prefix:name\" for systemd cgroups, got \"\(path)\" instead")
            }
            let slice = try expandSlice(parts[0].isEmpty ? "system.slice" : parts[0])
            let unit = parts[1].isEmpty ? "\(parts[2]).scope" : "\(parts[1])-\(parts[2]).scope"
            return .absolute(clean(slice + "/" + unit))
        }
        if path.isEmpty { return .relative(clean(id)) }
        return path.hasPrefix("/") ? .absolute(clean(path)) : .relative(clean(path))
    }

    /// "a-b-c.slice" → "/a.slice/a-b.slice/a-b-c.slice"; "-.slice" is the top.
    static func expandSlice(_ slice: String) throws -> String {
        guard slice.hasSuffix(".slice"), !slice.contains("/") else {
            throw CgroupError(description: "invalid slice name: \(slice)")
        }
        if slice == "-.slice" { return "/" }
        let name = String(slice.dropLast(".slice".count))
        let words = name.split(separator: "-", omittingEmptySubsequences: false)
        guard !words.contains(where: \.isEmpty) else { throw CgroupError(description: "invalid slice name: \(slice)") }
        var path = "", prefix = ""
        for word in words {
            prefix = prefix.isEmpty ? String(word) : prefix + "-" + word
            path += "/" + prefix + ".slice"
        }
        return path
    }

    /// Lexical clean-up: no empty, "." or ".." components; never above "/". Keeps the
    /// leading "/" of an absolute path and none on a relative one.
    static func clean(_ path: String) -> String {
        var parts: [Substring] = []
        for part in path.split(separator: "/") {
            switch part {
            case ".": continue
            case "..": if !parts.isEmpty { parts.removeLast() }
            default: parts.append(part)
            }
        }
        return (path.hasPrefix("/") ? "/" : "") + parts.joined(separator: "/")
    }
}
