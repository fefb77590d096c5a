import Testing
import AgentProtocol

@Suite struct ReadyLineTests {
    @Test func rendersAndParsesBack() {
        let line = ReadyLine(uptime: "24.32")
        #expect(line.rendered == "sm-init: ready v1 uptime=24.32")
        #expect(ReadyLine(parsing: line.rendered) == line)
        #expect(ReadyLine(parsing: line.rendered + "\r")?.uptimeSeconds == 24.32)
    }

    @Test(arguments: [
        "",
        "sm-init: ready",
        "sm-init: ready v0 uptime=1.0",
        "sm-init: ready vX uptime=1.0",
        "sm-init: ready v1 uptime=",
        "sm-init: ready v1 uptime=1.0 extra",
        "sm-init: ready v1 uptime=1e9",
        "sm-init: ready v1 uptime=-1",
        "sm-init: ready v1 uptime=" + String(repeating: "9", count: 200),
        "[ 1.0] sm-init: ready v1 uptime=1.0",
    ])
    func rejectsAnythingElse(_ text: String) {
        #expect(ReadyLine(parsing: text) == nil)
    }

    @Test func scannerFindsTheLineAcrossChunks() {
        var scanner = ConsoleLineScanner()
        #expect(scanner.feed(Array("[    1.0] booting\nsm-init: re".utf8)) == nil)
        #expect(scanner.feed(Array("ady v1 uptime=3.5".utf8)) == nil)
        #expect(scanner.feed(Array("\nmore\n".utf8))?.uptime == "3.5")
        // Only the first ready line counts.
        #expect(scanner.feed(Array("sm-init: ready v1 uptime=9.0\n".utf8)) == nil)
        #expect(scanner.ready?.uptime == "3.5")
    }

    @Test func scannerBoundsAHostileEndlessLine() {
        var scanner = ConsoleLineScanner()
        for _ in 0..<100 { _ = scanner.feed([UInt8](repeating: 0x41, count: 4096)) }
        // The cut-off line is not a ready line, and the next one still parses.
        #expect(scanner.feed(Array("\nsm-init: ready v1 uptime=1.5\n".utf8))?.uptime == "1.5")
    }

    @Test func kernelParametersAreEnvironmentForPID1() {
        // Unknown NAME=value parameters reach init as environment; no spaces allowed.
        for parameter in AgentProtocol.kernelParameters {
            #expect(parameter.contains("="))
            #expect(!parameter.contains(" "))
        }
    }
}
