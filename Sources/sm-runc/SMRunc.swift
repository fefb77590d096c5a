import ArgumentParser

/// sm-runc: an OCI runtime whose containers run in KVM microVMs.
/// One file per command (crun's layout); the engine is in the libraries.
@main
struct SMRunc: ParsableCommand {
    static let version = "0.1.0"

    static let configuration = CommandConfiguration(
        commandName: "sm-runc",
        abstract: "An OCI runtime that runs each container in a KVM microVM.",
        version: """
            sm-runc version \(version)
            spec: 1.2.0
            vmm: sm-runc (Swift, /dev/kvm)
            """,
        subcommands: [Boot.self, Run.self, SpecCommand.self, FeaturesCommand.self]
    )
}
