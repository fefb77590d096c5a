import ArgumentParser
import Foundation
import Runtime

/// sm-runc: an OCI runtime whose containers run in KVM microVMs.
/// One file per command (crun's layout); the engine is in the libraries.
@main
struct SMRunc: ParsableCommand {
    static let version = RuntimeOptions.version

    static let configuration = CommandConfiguration(
        commandName: "sm-runc",
        abstract: "An OCI runtime that runs each container in a KVM microVM.",
        version: """
            sm-runc version \(version)
            spec: 1.2.0
            vmm: sm-runc (Swift, /dev/kvm)
            """,
        subcommands: [Create.self, Start.self, StateCommand.self, Kill.self, Delete.self, Run.self, Exec.self, Pause.self, Resume.self, Ps.self, Events.self, Update.self, List.self,
                      SpecCommand.self, FeaturesCommand.self, Boot.self, SnapshotCommand.self, VMMCommand.self]
    )

    @OptionGroup var globals: GlobalOptions

    /// Runs the command; errors are reported as runc does (see `Reporter`) with exit 1.
    static func main() {
        let reporter = Reporter.fromArguments(Array(CommandLine.arguments.dropFirst()))
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch let error as RuntimeError {
            reporter.error(error.description)
            Foundation.exit(error.exitCode)
        } catch let error as ExitCode {
            Foundation.exit(error.rawValue)
        } catch {
            // Help, version and usage errors keep ArgumentParser's output; usage errors
            // are also logged so engines reading --log see them.
            if exitCode(for: error) != .success { reporter.error(message(for: error)); Foundation.exit(1) }
            exit(withError: error)
        }
    }
}
