import Runtime
import ArgumentParser
import Foundation
import OCIBundle

/// `sm-runc features`: the runtime-spec features document, stating what this version
/// actually implements (it grows with each issue; nothing is claimed ahead of the code).
struct FeaturesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "features", abstract: "Show the enabled features (runtime-spec features.md).")

    /// Mount options the guest agent applies itself; others go to the filesystem as data.
    static let mountOptions = ["ro", "rw", "nosuid", "nodev", "noexec", "relatime", "strictatime",
                               "noatime", "nodiratime", "bind", "rbind", "private", "rprivate", "slave", "rslave",
                               "shared", "rshared", "unbindable", "runbindable"]

    static var document: Features {
        Features(
            ociVersionMin: "1.0.0", ociVersionMax: "1.2.0",
            hooks: Hooks.names,                          // host: prestart, createRuntime, poststart, poststop; guest: the rest
            mountOptions: mountOptions,
            linux: .init(
                namespaces: [],                          // the microVM is the isolation; none are made inside it yet
                capabilities: Capability.known,          // applied by the agent in the guest
                cgroup: .init(v1: false, v2: false, systemd: false, systemdUser: false, rdma: false),
                seccomp: .init(                          // the container's profile, compiled on the host, loaded by the agent
                    enabled: true,
                    actions: [.allow, .errno, .kill, .killThread, .killProcess, .trap, .log, .trace],
                    operators: SeccompOperator.known, archs: [.x86_64, .x86, .x32]),
                apparmor: .init(enabled: false),
                selinux: .init(enabled: false),
                intelRdt: .init(enabled: false)),
            annotations: ["io.sm-runc.isolation": "kvm-microvm"])
    }

    func run() throws {
        FileHandle.standardOutput.write(Data(try OCIJSON.encode(Self.document) + [0x0a]))
    }
}
