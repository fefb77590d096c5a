// swift-tools-version:6.0
import PackageDescription

// Module graph (see ARCHITECTURE.md):
//   sm-runc (CLI) ──► Runtime (the engine) ──► VMM ──► CKVM (linux/kvm.h + ioctl shims)
//                        │  ├─► Hooks, Cgroups  ├─────► CSeccomp (libseccomp + libcap)
//                        │                      └─────► AgentProtocol (the guest contract)
//                        └────────────────────────────► OCIBundle (runtime-spec types; depends on nothing)
//   sm-init (guest agent, static) ──► AgentProtocol ──► OCIBundle
let package = Package(
    name: "sm-runc",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "sm-runc", targets: ["sm-runc"]),
        .executable(name: "sm-init", targets: ["sm-init"]),
        .executable(name: "sm-bench", targets: ["sm-bench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-system", from: "1.4.0"),
    ],
    targets: [
        // C: <linux/kvm.h> and the non-variadic ioctl shims Swift cannot call directly.
        .target(name: "CKVM"),
        // C: libseccomp and libcap bridges (Debian's libseccomp-dev, libcap-dev).
        .target(
            name: "CSeccomp",
            linkerSettings: [.linkedLibrary("seccomp"), .linkedLibrary("cap")]
        ),
        .target(name: "OCIBundle"),
        // C: libc calls Swift cannot reach (pty, SCM_RIGHTS, pipe2, closefrom); host and guest.
        .target(name: "CPosix"),
        // C: guest-side libc calls Swift's Glibc module lacks (reboot(2)).
        .target(name: "CGuest"),
        // The VMM <-> guest agent contract. No Foundation: it is linked into the static agent.
        .target(name: "AgentProtocol", dependencies: ["OCIBundle"]),
        // OCI lifecycle hooks, run on the host and (chrooted) in the guest. No Foundation.
        .target(name: "Hooks", dependencies: ["OCIBundle", "CPosix"]),
        // The container's cgroup (v1, hybrid, v2), joined by the VMM process. No Foundation.
        .target(name: "Cgroups", dependencies: ["OCIBundle"]),
        // SHA-256, optimised in every configuration: it hashes the guest kernel and agent
        // (tens of MB) for the snapshot key, and a debug build's unoptimised loop took
        // seconds here and a minute under a software CPU (the hardware-KVM test's L1).
        .target(name: "Digest", swiftSettings: [.unsafeFlags(["-O"])]),
        .target(
            name: "VMM",
            dependencies: [
                "CKVM", "CSeccomp", "CPosix", "Digest",
                // The snapshot point is a contract with the agent: its lines live there once.
                "AgentProtocol",
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        // The runtime engine: a container's plan (resolved once at create), its state
        // directory, the snapshot cache, the VMM process's host side (agent session,
        // control socket, bind shares, cgroup, hooks). Everything the CLI's commands do
        // beyond parsing their flags; unit-tested without a VM (RuntimeTests).
        .target(
            name: "Runtime",
            dependencies: ["VMM", "OCIBundle", "CSeccomp", "AgentProtocol", "CPosix", "Hooks", "Cgroups"]
        ),
        // The CLI: one thin file per command (runc's contract) over Runtime.
        .executableTarget(
            name: "sm-runc",
            dependencies: [
                "Runtime", "VMM", "OCIBundle", "AgentProtocol", "CPosix",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // PID 1 in the guest. Linked as a fully static executable (glibc static), no Foundation.
        .executableTarget(
            name: "sm-init",
            dependencies: ["AgentProtocol", "OCIBundle", "CGuest", "CPosix", "Hooks"],
            linkerSettings: [.unsafeFlags(["-static-executable"])]
        ),
        // The reference VMM (Debian's qemu microvm) for benchmarks and the software-CPU boot test.
        .target(name: "ReferenceVMM", dependencies: ["AgentProtocol"]),
        // A private podman configuration (storage, CNI, events under one directory) for
        // the engine tests and benchmarks.
        .target(name: "PodmanSandbox", dependencies: ["CPosix"]),
        // Benchmarks: programs that print figures (not timed tests).
        .executableTarget(
            name: "sm-bench",
            dependencies: [
                "VMM", "AgentProtocol", "ReferenceVMM", "PodmanSandbox",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Benchmarks/sm-bench"
        ),
        .testTarget(name: "VMMTests", dependencies: ["VMM", "CKVM"]),
        .testTarget(name: "OCIBundleTests", dependencies: ["OCIBundle"], exclude: ["Fixtures"]),
        .testTarget(name: "AgentProtocolTests", dependencies: ["AgentProtocol", "OCIBundle"]),
        .testTarget(name: "CSeccompTests", dependencies: ["CSeccomp"]),
        .testTarget(name: "HooksTests", dependencies: ["Hooks", "OCIBundle"]),
        .testTarget(name: "CgroupsTests", dependencies: ["Cgroups", "OCIBundle"]),
        // The engine without a VM: plan, control socket, state directory, snapshot cache.
        .testTarget(name: "RuntimeTests", dependencies: ["Runtime", "VMM", "AgentProtocol", "OCIBundle", "CPosix"]),
        .testTarget(name: "GuestBootTests", dependencies: ["VMM", "AgentProtocol", "ReferenceVMM", "CPosix", "PodmanSandbox"]),
        .testTarget(name: "PodmanSandboxTests", dependencies: ["PodmanSandbox"]),
    ]
)
