/// An OCI bundle: a directory with config.json and (usually) the root filesystem.
///
/// Foundation has a `Bundle` class too: in a file that imports Foundation, a type annotation
/// must say `OCIBundle.Bundle` (calls such as `Bundle.load(path)` resolve on their own).
public struct Bundle: Equatable, Sendable {
    public static let configFile = "config.json"

    /// The bundle directory, absolute and cleaned.
    public let path: String
    public var spec: Spec
    /// `root.path` resolved against the bundle directory.
    public var rootfs: String

    public var configPath: String { path == "/" ? "/" + Self.configFile : path + "/" + Self.configFile }

    public init(path: String, spec: Spec) {
        self.path = Path.absolute(path)
        self.spec = spec
        self.rootfs = Path.resolve(spec.root?.path ?? "", against: self.path)
    }

    /// Reads `<path>/config.json`, decodes it, validates it and resolves `root.path`.
    ///
    /// Errors, in the order they are checked:
    /// - "open /b/config.json: no such file or directory"
    /// - "config.json: invalid JSON at line 2, column 5: ..." / "config.json: invalid JSON at process.args[0]: ..."
    /// - "config.json: process.args: must not be empty" (see `Spec.validate`)
    /// - with `checkRootfs`: "config.json: root.path: /b/rootfs: no such file or directory" / "...: not a directory"
    public static func load(_ path: String, checkRootfs: Bool = true) throws(BundleError) -> Bundle {
        let directory = Path.absolute(path)
        let configPath = directory == "/" ? "/" + configFile : directory + "/" + configFile
        let bytes = try FileSystem.readFile(configPath)
        let spec = try OCIJSON.decode(Spec.self, from: bytes, file: configFile)
        try spec.validate(file: configFile)
        let bundle = Bundle(path: directory, spec: spec)
        if checkRootfs {
            let isDirectory: Bool
            do {
                isDirectory = try FileSystem.isDirectory(bundle.rootfs)
            } catch {
                guard case .system(_, _, let code) = error else { throw error }
                throw .invalid(file: configFile, at: "root.path", reason: "\(bundle.rootfs): \(BundleError.errorText(code))")
            }
            if !isDirectory {
                throw .invalid(file: configFile, at: "root.path", reason: "\(bundle.rootfs): not a directory")
            }
        }
        return bundle
    }

    /// Reads and validates a process document (`exec --process <file>`); errors name `path`.
    public static func loadProcess(_ path: String) throws(BundleError) -> Process {
        let bytes = try FileSystem.readFile(path)
        let process = try OCIJSON.decode(Process.self, from: bytes, file: path)
        try process.validate(file: path)
        return process
    }
}
