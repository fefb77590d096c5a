#if canImport(Glibc)
import Glibc
#endif
import AgentProtocol

/// Finds the guest kernel and agent. Engines call the runtime with almost no
/// environment (podman's `kill` and `delete` get no PATH, no HOME), so defaults are
/// absolute: `sm-runc-guest/` next to the running binary (scripts/build.sh puts them
/// there), then /usr/local/lib/sm-runc. `SM_RUNC_KERNEL` / `SM_RUNC_AGENT` override.
public enum GuestArtifacts {
    public struct NotFound: Error, CustomStringConvertible {
        public let description: String
    }

    public static func kernel(_ explicit: String? = nil) throws(NotFound) -> String {
        try locate(explicit, environment: "SM_RUNC_KERNEL", name: "vmlinux", what: "guest kernel")
    }

    public static func agent(_ explicit: String? = nil) throws(NotFound) -> String {
        try locate(explicit, environment: "SM_RUNC_AGENT", name: "sm-init", what: "guest agent")
    }

    /// The guest's own root directory (the agent as /sm-init), shared read-only with
    /// virtio-fs so the agent is paged in on demand rather than unpacked from an initramfs.
    public static func guestRoot() -> String? {
        if let value = getenv("SM_RUNC_GUEST_ROOT"), let path = String(validatingCString: value), !path.isEmpty { return path }
        return searchDirectories.map { $0 + "/root" }.first { access($0 + GuestLayout.agentPath, X_OK) == 0 }
    }

    /// System.map beside the kernel, when there is one (for guest profiles).
    public static func systemMap(forKernel kernel: String) -> String? {
        let directory = kernel[..<(kernel.lastIndex(of: "/") ?? kernel.startIndex)]
        let path = (directory.isEmpty ? "." : String(directory)) + "/System.map"
        return access(path, R_OK) == 0 ? path : nil
    }

    public static var searchDirectories: [String] {
        var directories: [String] = []
        if let executable = executablePath() {
            let directory = String(executable[..<(executable.lastIndex(of: "/") ?? executable.endIndex)])
            directories.append(directory + "/sm-runc-guest")
        }
        directories.append("/usr/local/lib/sm-runc")
        return directories
    }

    static func locate(_ explicit: String?, environment: String, name: String, what: String) throws(NotFound) -> String {
        if let explicit { return explicit }
        if let value = getenv(environment), let path = String(validatingCString: value), !path.isEmpty { return path }
        for directory in searchDirectories where access(directory + "/" + name, R_OK) == 0 {
            return directory + "/" + name
        }
        throw NotFound(description: "\(what) not found: no \(name) in \(searchDirectories.joined(separator: ", ")); " +
                       "run scripts/build.sh or set \(environment)")
    }

    static func executablePath() -> String? {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard n > 0 else { return nil }
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
