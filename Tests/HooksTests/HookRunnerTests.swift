import Testing
import Foundation
import OCIBundle
@testable import Hooks

@Suite struct HookRunnerTests {
    static let state = Array(#"{"ociVersion":"1.2.0","id":"h","status":"creating","pid":1,"bundle":"/b"}"#.utf8)

    func temporaryFile() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("hook-\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path
    }

    @Test func theHookGetsTheStateOnStdinArgsAndEnv() throws {
        let out = temporaryFile()
        defer { try? FileManager.default.removeItem(atPath: out) }
        let hook = Hook(path: "/bin/sh", args: ["sh", "-c", "cat > \(out); echo \" $0 $HOOKVAR\" >> \(out)", "argzero"], env: ["HOOKVAR=v1"])
        try HookRunner.run(hook, state: Self.state)
        #expect(try String(contentsOfFile: out, encoding: .utf8) == String(decoding: Self.state, as: UTF8.self) + " argzero v1\n")
    }

    @Test func aFailingHookIsReportedWithItsOutputAndStopsTheRest() throws {
        let marker = temporaryFile()
        let hooks = [Hook(path: "/bin/sh", args: ["sh", "-c", "echo broken >&2; exit 3"]),
                     Hook(path: "/bin/sh", args: ["sh", "-c", "touch \(marker)"])]
        #expect(throws: HookRunner.Failure(description: "error running createRuntime hook #0: exit status 3, output: broken\n")) {
            try HookRunner.runAll(hooks, kind: "createRuntime", state: Self.state)
        }
        #expect(!FileManager.default.fileExists(atPath: marker))
    }

    @Test func aHookPastItsTimeoutIsKilled() throws {
        let started = Date()
        #expect(throws: HookRunner.Failure(description: "error running poststart hook #0: timeout after 1s")) {
            try HookRunner.runAll([Hook(path: "/bin/sleep", args: ["sleep", "30"], timeout: 1)], kind: "poststart", state: Self.state)
        }
        #expect(Date().timeIntervalSince(started) < 10)
    }

    /// A hook that is gone before its stdin is written: EPIPE, and no SIGPIPE for the
    /// runtime even where SIGPIPE is not ignored (it would end this child by signal).
    @Test func stateForAHookThatIsGoneGivesEPIPENotSIGPIPE() async {
        await #expect(processExitsWith: .success) {
            signal(SIGPIPE, SIG_DFL)
            var pair: [Int32] = [-1, -1]
            guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &pair) == 0 else { exit(2) }
            close(pair[0])
            let sent = HookRunner.sendState(HookRunnerTests.state, to: pair[1])
            exit(sent == -1 && errno == EPIPE ? 0 : 3)
        }
    }

    /// A hook that exits without reading a state larger than the socket's buffer:
    /// the run succeeds, with SIGPIPE at its default action.
    @Test func aHookThatIgnoresItsStdinIsFine() async {
        await #expect(processExitsWith: .success) {
            signal(SIGPIPE, SIG_DFL)
            let big = [UInt8](repeating: 0x20, count: 1 << 20)
            for _ in 0..<20 {
                do { try HookRunner.run(Hook(path: "/bin/sh", args: ["sh", "-c", "exit 0"]), state: big) } catch { exit(3) }
            }
            exit(0)
        }
    }

    @Test func aMissingProgramIsAnError() throws {
        #expect(throws: HookRunner.Failure(description: "error running prestart hook #0: exec /nonexistent/hook: No such file or directory")) {
            try HookRunner.runAll([Hook(path: "/nonexistent/hook")], kind: "prestart", state: Self.state)
        }
    }

    @Test func aHookThatLeavesAChildHoldingItsOutputDoesNotHang() throws {
        let started = Date()
        try HookRunner.run(Hook(path: "/bin/sh", args: ["sh", "-c", "sleep 20 & exit 0"]), state: Self.state)
        #expect(Date().timeIntervalSince(started) < 10)
    }
}
