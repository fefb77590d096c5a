import Foundation

/// The config.json and process.json documents podman 4.3 and containerd 1.6 handed
/// to a runtime (shared/reference/config-examples), kept beside this file in Fixtures/.
enum Fixtures {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

    static func load(_ name: String) -> String {
        do {
            return try String(contentsOf: directory.appendingPathComponent(name), encoding: .utf8)
        } catch {
            fatalError("fixture \(name): \(error)")
        }
    }

    static let podmanRunD = load("podman-run-d.config.json")
    static let podmanRunRmT = load("podman-run-rm-t.config.json")
    static let podmanRunRmVolume = load("podman-run-rm-volume.config.json")
    static let containerdRunD = load("containerd-run-d.config.json")
    static let podmanExec = load("podman-exec.process.json")
    static let containerdExec = load("containerd-exec.process.json")

    static let configs: [Fixture] = [
        Fixture(name: "podman-run-d.config.json", json: podmanRunD),
        Fixture(name: "podman-run-rm-t.config.json", json: podmanRunRmT),
        Fixture(name: "podman-run-rm-volume.config.json", json: podmanRunRmVolume),
        Fixture(name: "containerd-run-d.config.json", json: containerdRunD),
    ]

    static let processes: [Fixture] = [
        Fixture(name: "podman-exec.process.json", json: podmanExec),
        Fixture(name: "containerd-exec.process.json", json: containerdExec),
    ]
}

struct Fixture: Sendable, CustomStringConvertible {
    let name: String
    let json: String
    var description: String { name }
}
