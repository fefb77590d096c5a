import Runtime
import ArgumentParser
import Foundation
import OCIBundle

/// `sm-runc spec`: writes a starter config.json, as `runc spec` does (refusing to
/// overwrite one). The process is `sh` on a terminal; edit it for `run`, which does
/// not give containers a terminal yet.
struct SpecCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "spec", abstract: "Create a new specification file (config.json).")

    @Option(name: [.customShort("b"), .long], help: "Path to the root of the bundle directory.")
    var bundle: String = "."
    @Flag(help: "Generate a configuration for a rootless container (not supported).")
    var rootless = false

    func run() throws {
        guard !rootless else { throw RuntimeError("spec --rootless: rootless containers are not supported by sm-runc") }
        let path = (bundle as NSString).appendingPathComponent("config.json")
        guard !FileManager.default.fileExists(atPath: path) else {
            throw RuntimeError("File \(path) exists. Remove it first")
        }
        let bytes = try OCIJSON.encode(Spec.example()) + [0x0a]
        guard FileManager.default.createFile(atPath: path, contents: Data(bytes), attributes: [.posixPermissions: 0o666]) else {
            throw RuntimeError("open \(path): \(String(cString: strerror(errno)).lowercased())")
        }
    }
}
