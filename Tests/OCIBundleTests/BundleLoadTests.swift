import Foundation
import Testing
@testable import OCIBundle

@Suite struct BundleLoadTests {
    private func exampleJSON(_ mutate: (inout Spec) -> Void = { _ in }) throws -> String {
        var spec = Spec.example()
        mutate(&spec)
        return String(decoding: try OCIJSON.encode(spec), as: UTF8.self)
    }

    @Test func loadsAValidBundle() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        try dir.write(try exampleJSON(), to: "config.json")
        try dir.makeDirectory("rootfs")
        let bundle = try OCIBundle.Bundle.load(dir.path + "/")
        #expect(bundle.path == dir.path)
        #expect(bundle.configPath == dir.path + "/config.json")
        #expect(bundle.rootfs == dir.path + "/rootfs")
        #expect(bundle.spec == Spec.example())
    }

    @Test func loadsTheEngineFixtures() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        try dir.write(Fixtures.containerdRunD, to: "config.json")
        try dir.makeDirectory("rootfs")
        let bundle = try OCIBundle.Bundle.load(dir.path)
        #expect(bundle.rootfs == dir.path + "/rootfs")
        #expect(bundle.spec.process?.args == ["sleep", "100"])
    }

    @Test func anAbsoluteRootIsKept() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        try dir.makeDirectory("elsewhere/root")
        try dir.write(try exampleJSON { $0.root = Root(path: dir.path + "//elsewhere/./root/") }, to: "config.json")
        let bundle = try OCIBundle.Bundle.load(dir.path)
        #expect(bundle.rootfs == dir.path + "/elsewhere/root")
    }

    @Test func aMissingConfigIsReportedLikeGo() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        #expect(errorMessage { try OCIBundle.Bundle.load(dir.path) } == "open \(dir.path)/config.json: no such file or directory")
        #expect(throws: BundleError.system(operation: "open", path: dir.path + "/config.json", errno: ENOENT)) {
            try OCIBundle.Bundle.load(dir.path)
        }
        #expect(errorMessage { try OCIBundle.Bundle.load(dir.path + "/nope") } == "open \(dir.path)/nope/config.json: no such file or directory")
    }

    @Test func aConfigThatIsADirectory() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        try dir.makeDirectory("config.json")
        #expect(errorMessage { try OCIBundle.Bundle.load(dir.path) } == "read \(dir.path)/config.json: is a directory")
    }

    @Test func invalidJSON() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        try dir.write("{\n  \"ociVersion\": \"1.2.0\",\n  \"process\": {\"args\": [\"sh\", 2]}\n}\n", to: "config.json")
        #expect(errorMessage { try OCIBundle.Bundle.load(dir.path) } == "config.json: invalid JSON at process.args[1]: expected a string, found 2")
        try dir.write("{\n  \"ociVersion\": \"1.2.0\"\n  \"process\": {}\n}\n", to: "config.json")
        #expect(errorMessage { try OCIBundle.Bundle.load(dir.path) }
            == "config.json: invalid JSON at line 3, column 3: invalid character '\"' after object key:value pair")
    }

    @Test func validationRunsBeforeTheRootfsCheck() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        try dir.write(try exampleJSON { $0.process?.args = [] }, to: "config.json")
        #expect(errorMessage { try OCIBundle.Bundle.load(dir.path) } == "config.json: process.args: must not be empty")
    }

    @Test func theRootfsMustBeADirectory() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        try dir.write(try exampleJSON(), to: "config.json")
        #expect(errorMessage { try OCIBundle.Bundle.load(dir.path) } == "config.json: root.path: \(dir.path)/rootfs: no such file or directory")
        try dir.write("", to: "rootfs")
        #expect(errorMessage { try OCIBundle.Bundle.load(dir.path) } == "config.json: root.path: \(dir.path)/rootfs: not a directory")
        let bundle = try OCIBundle.Bundle.load(dir.path, checkRootfs: false)
        #expect(bundle.rootfs == dir.path + "/rootfs")
    }

    @Test func processFiles() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let path = dir.path + "/exec-process-1"
        try dir.write(Fixtures.podmanExec, to: "exec-process-1")
        let process = try OCIBundle.Bundle.loadProcess(path)
        #expect(process.args == ["echo", "from-exec"])
        #expect(process.env?.contains("container=podman") == true)

        try dir.write(#"{"args": [], "cwd": "/"}"#, to: "exec-process-1")
        #expect(errorMessage { try OCIBundle.Bundle.loadProcess(path) } == "\(path): args: must not be empty")
        try dir.write(#"{"args": ["sh"], "cwd": 5}"#, to: "exec-process-1")
        #expect(errorMessage { try OCIBundle.Bundle.loadProcess(path) } == "\(path): invalid JSON at cwd: expected a string, found 5")
        #expect(errorMessage { try OCIBundle.Bundle.loadProcess(dir.path + "/missing") } == "open \(dir.path)/missing: no such file or directory")
    }

    @Test(arguments: [
        ("/", "/"), ("", "."), (".", "."), ("a/b/../c", "a/c"), ("/a//b/./c/", "/a/b/c"), ("/..", "/"), ("/../a", "/a"),
        ("../a", "../a"), ("a/../..", ".."), ("a/..", "."), ("//x", "/x"),
    ])
    func cleanPaths(_ path: String, _ expected: String) {
        #expect(Path.clean(path) == expected)
    }

    @Test func resolvePaths() {
        #expect(Path.resolve("rootfs", against: "/b") == "/b/rootfs")
        #expect(Path.resolve("../shared/rootfs", against: "/b/c") == "/b/shared/rootfs")
        #expect(Path.resolve("/abs/./root", against: "/b") == "/abs/root")
        #expect(Path.absolute("/x/y/") == "/x/y")
        #expect(Path.absolute("rel").hasPrefix("/"))
    }
}
