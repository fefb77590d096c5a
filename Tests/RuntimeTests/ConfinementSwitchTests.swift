import Testing
import Foundation
@testable import Runtime

extension RuntimeTests {
    /// Who may switch the VMM's seccomp filters and capability drop off: the host's
    /// operator only, never the bundle.
    @Suite struct ConfinementSwitchTests {
        /// A debug reporter writing to a file of `directory`; returns it and its path.
        static func reporter(in directory: TemporaryDirectory) -> (Reporter, String) {
            let path = directory.path + "/log"
            return (Reporter(logPath: path, format: .text, debug: true, stderrAllowed: false), path)
        }

        @Test func theAnnotationNoLongerSwitchesTheConfinementOffAndIsNotedAsIgnored() throws {
            let directory = try TemporaryDirectory()
            let (reporter, log) = Self.reporter(in: directory)
            let annotations = [ContainerHost.ignoredSeccompAnnotation: "off", "other": "x"]
            #expect(ContainerHost.confines(switchedOffByHost: false, annotations: annotations, reporter: reporter))
            let text = try String(contentsOfFile: log, encoding: .utf8)
            #expect(text.contains("level=debug"))
            #expect(text.contains("annotation run.sm-runc.vmm-seccomp=off ignored"))
        }

        @Test func onlyTheHostSwitchesItOff() throws {
            let directory = try TemporaryDirectory()
            let (reporter, log) = Self.reporter(in: directory)
            #expect(ContainerHost.confines(switchedOffByHost: false, annotations: nil, reporter: reporter))
            #expect(!ContainerHost.confines(switchedOffByHost: true, annotations: nil, reporter: reporter))
            #expect((try? String(contentsOfFile: log, encoding: .utf8)) ?? "" == "")
            // The host's switches: the global flag (the environment variable is read by VMM).
            var options = RuntimeOptions(root: "/r", log: nil, logFormat: "text", debug: false, vmmSeccompOff: true)
            #expect(options.vmmConfinementOff)
            options.vmmSeccompOff = false
            #expect(options.vmmConfinementOff == (getenv("SM_RUNC_VMM_SECCOMP").map { String(cString: $0) } == "off"))
        }
    }
}
