import Testing
import Foundation
import PodmanSandbox

/// The private podman configuration, written and read back without podman.
@Suite struct PodmanSandboxTests {
    func temporary() throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("podman-sandbox-\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    @Test func everyPathItNamesIsInsideItsDirectoryAndExists() throws {
        let directory = try temporary()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let sandbox = PodmanSandbox(directory: directory, networkNone: true)
        try sandbox.write()
        let text = try String(contentsOfFile: sandbox.storageConf, encoding: .utf8) + String(contentsOfFile: sandbox.containersConf, encoding: .utf8)
        // Every quoted value that is a path: graphroot, runroot, events_logfile_path,
        // tmp_dir, volume_path, static_dir, network_config_dir.
        let paths = text.split(separator: "\"").enumerated().filter { $0.offset % 2 == 1 && $0.element.hasPrefix("/") }.map { String($0.element) }
        #expect(paths.count == 7, "\(paths)")
        for path in paths {
            #expect(path.hasPrefix(directory + "/"), "\(path) is outside the sandbox")
            // podman makes static_dir (storage/libpod) and the events log itself, inside
            // directories made here.
            let made = path.hasSuffix(".log") || path.hasSuffix("/libpod") ? (path as NSString).deletingLastPathComponent : path
            #expect(FileManager.default.fileExists(atPath: made), "\(made) was not made")
        }
    }

    @Test func networkNoneIsTheOnlyDifferenceBetweenTheTwoKinds() throws {
        let none = PodmanSandbox(directory: "/x", networkNone: true), bridge = PodmanSandbox(directory: "/x", networkNone: false)
        #expect(none.containersText.contains("netns = \"none\"\n"))
        #expect(!bridge.containersText.contains("netns"))
        #expect(none.containersText.replacingOccurrences(of: "netns = \"none\"\n", with: "") == bridge.containersText)
        #expect(none.storageText == bridge.storageText)
    }

    @Test func theEnvironmentPointsPodmanAtBothFiles() {
        let sandbox = PodmanSandbox(directory: "/srv/p", networkNone: false)
        #expect(sandbox.environment["CONTAINERS_CONF"] == "/srv/p/containers.conf")
        #expect(sandbox.environment["CONTAINERS_STORAGE_CONF"] == "/srv/p/storage.conf")
        #expect(sandbox.environmentList.contains("CONTAINERS_CONF=/srv/p/containers.conf"))
        #expect(sandbox.environmentList == sandbox.environmentList.sorted())
    }

    @Test func aCommandsOutputStatusAndSignalComeBackAndItsFilesGo() throws {
        let directory = try temporary()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let command = FileOutputCommand(scratch: directory, environment: ["A=from the environment"])
        let result = try command.run(["/bin/sh", "-c", "cat; echo \"$A\"; echo err >&2; exit 3"], stdin: "in\n")
        #expect(result == .init(status: 3, stdout: "in\nfrom the environment\n", stderr: "err\n"))
        #expect(try command.run(["/bin/sh", "-c", "kill -TERM $$"]).status == 128 + SIGTERM)
        #expect(try command.run(["/bin/cat"]).stdout == "", "stdin is /dev/null without input")
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory).isEmpty)
        #expect(throws: POSIXError.self) { try command.run(["/nonexistent/tool"]) }
    }
}
