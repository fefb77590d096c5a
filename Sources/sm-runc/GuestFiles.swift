#if canImport(Glibc)
import Glibc
#endif
import VMM
import ArgumentParser

/// Finds the guest kernel and agent. Engines call the runtime with almost no
/// environment (podman's `kill` and `delete` get no PATH, no HOME), so defaults are
/// absolute: next to the sm-runc binary (`sm-runc-guest/`, where scripts/build.sh
/// puts them), then /usr/local/lib/sm-runc. `SM_RUNC_KERNEL` / `SM_RUNC_AGENT` override.
enum GuestFiles {
    static func kernel(_ explicit: String?) throws -> String {
        try locate(explicit, environment: "SM_RUNC_KERNEL", name: "vmlinux", what: "guest kernel")
    }

    static func agent(_ explicit: String?) throws -> String {
        try locate(explicit, environment: "SM_RUNC_AGENT", name: "sm-init", what: "guest agent")
    }

    static var searchDirectories: [String] {
        var directories: [String] = []
        if let executable = executablePath() {
            let directory = String(executable[..<(executable.lastIndex(of: "/") ?? executable.endIndex)])
            directories.append(directory + "/sm-runc-guest")
        }
        directories.append("/usr/local/lib/sm-runc")
        return directories
    }

    static func locate(_ explicit: String?, environment: String, name: String, what: String) throws -> String {
        if let explicit { return explicit }
        if let value = getenv(environment), let path = String(validatingCString: value), !path.isEmpty { return path }
        for directory in searchDirectories where access(directory + "/" + name, R_OK) == 0 {
            return directory + "/" + name
        }
        throw ValidationError("\(what) not found: looked for \(name) in \(searchDirectories.joined(separator: ", ")); " +
                              "run scripts/build.sh or set \(environment)")
    }

    static func executablePath() -> String? {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard n > 0 else { return nil }
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
