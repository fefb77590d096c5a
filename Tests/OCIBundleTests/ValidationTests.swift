import Testing
@testable import OCIBundle

struct ValidationCase: Sendable, CustomStringConvertible {
    let message: String
    let mutate: @Sendable (inout Spec) -> Void
    var description: String { message }
}

@Suite struct ValidationTests {
    /// The sysctls of the container's own namespaces pass (runc's rules).
    @Test func namespacedSysctlsPass() {
        var spec = Spec.example()
        spec.linux?.namespaces = [.init(type: .ipc), .init(type: .network), .init(type: .uts), .init(type: .mount)]
        spec.linux?.sysctl = ["kernel.shmmax": "65536", "fs.mqueue.msg_max": "9", "net.ipv4.ip_forward": "1", "kernel.domainname": "a"]
        #expect(spec.validationErrors() == [])
    }

    static let cases: [ValidationCase] = [
        ValidationCase(message: "config.json: ociVersion: must not be empty") { $0.ociVersion = "" },
        ValidationCase(message: #"config.json: ociVersion: unsupported "2.0.0" (want 1.0.0 to 1.2.x)"#) { $0.ociVersion = "2.0.0" },
        ValidationCase(message: #"config.json: ociVersion: unsupported "1.3.0" (want 1.0.0 to 1.2.x)"#) { $0.ociVersion = "1.3.0" },
        ValidationCase(message: #"config.json: ociVersion: unsupported "0.6.0" (want 1.0.0 to 1.2.x)"#) { $0.ociVersion = "0.6.0" },
        ValidationCase(message: #"config.json: ociVersion: invalid "1.0" (want a SemVer version such as 1.2.0)"#) { $0.ociVersion = "1.0" },
        ValidationCase(message: "config.json: root: must be set") { $0.root = nil },
        ValidationCase(message: "config.json: root.path: must not be empty") { $0.root?.path = "" },
        ValidationCase(message: "config.json: process: must be set") { $0.process = nil },
        ValidationCase(message: "config.json: process.args: must not be empty") { $0.process?.args = [] },
        ValidationCase(message: "config.json: process.args: must not be empty") { $0.process?.args = nil },
        ValidationCase(message: "config.json: process.cwd: must not be empty") { $0.process?.cwd = "" },
        ValidationCase(message: "config.json: process.cwd: must be an absolute path") { $0.process?.cwd = "home/user" },
        ValidationCase(message: #"config.json: process.env[2]: invalid "NOVALUE" (want KEY=value)"#) { $0.process?.env?.append("NOVALUE") },
        ValidationCase(message: #"config.json: process.env[2]: invalid "=x" (want KEY=value)"#) { $0.process?.env?.append("=x") },
        ValidationCase(message: #"config.json: process.rlimits[1].type: unknown "RLIMIT_FOO""#) {
            $0.process?.rlimits?.append(Rlimit(type: "RLIMIT_FOO", hard: 1, soft: 1))
        },
        ValidationCase(message: #"config.json: process.rlimits[1].type: duplicate "RLIMIT_NOFILE""#) {
            $0.process?.rlimits?.append(Rlimit(type: .nofile, hard: 1, soft: 1))
        },
        ValidationCase(message: "config.json: process.rlimits[0]: soft limit 2048 is above hard limit 1024") {
            $0.process?.rlimits = [Rlimit(type: .nofile, hard: 1024, soft: 2048)]
        },
        ValidationCase(message: "config.json: process.oomScoreAdj: 1001 is out of range (-1000 to 1000)") { $0.process?.oomScoreAdj = 1001 },
        ValidationCase(message: #"config.json: process.ioPriority.class: unknown "IOPRIO_CLASS_X" (want IOPRIO_CLASS_RT, IOPRIO_CLASS_BE or IOPRIO_CLASS_IDLE)"#) {
            $0.process?.ioPriority = IOPriority(class: "IOPRIO_CLASS_X", priority: 0)
        },
        ValidationCase(message: "config.json: process.ioPriority.priority: 8 is out of range (0 to 7)") {
            $0.process?.ioPriority = IOPriority(class: .bestEffort, priority: 8)
        },
        ValidationCase(message: #"config.json: process.scheduler.policy: unknown "SCHED_X""#) { $0.process?.scheduler = Scheduler(policy: "SCHED_X") },
        ValidationCase(message: "config.json: hostname: unable to set hostname without a private UTS namespace") {
            $0.linux?.namespaces?.removeAll { $0.type == .uts }
        },
        ValidationCase(message: "config.json: domainname: unable to set domainname without a private UTS namespace") {
            $0.hostname = nil
            $0.domainname = "example.com"
            $0.linux?.namespaces = nil
        },
        ValidationCase(message: #"config.json: linux.sysctl: sysctl "net.ipv4.ip_forward" not allowed in host network namespace"#) {
            $0.linux?.namespaces?.removeAll { $0.type == .network }
            $0.linux?.sysctl = ["net.ipv4.ip_forward": "1"]
        },
        ValidationCase(message: #"config.json: linux.sysctl: sysctl "kernel.shmmax" is not allowed in the hosts ipc namespace"#) {
            $0.linux?.namespaces?.removeAll { $0.type == .ipc }
            $0.linux?.sysctl = ["kernel.shmmax": "65536"]
        },
        ValidationCase(message: #"config.json: linux.sysctl: sysctl "fs.mqueue.msg_max" is not allowed in the hosts ipc namespace"#) {
            $0.linux?.namespaces?.removeAll { $0.type == .ipc }
            $0.linux?.sysctl = ["fs.mqueue.msg_max": "9"]
        },
        ValidationCase(message: #"config.json: linux.sysctl: sysctl "vm.swappiness" is not in a separate kernel namespace"#) {
            $0.linux?.sysctl = ["vm.swappiness": "10"]
        },
        ValidationCase(message: #"config.json: linux.sysctl: sysctl "kernel.hostname" is not allowed as it conflicts with the OCI "hostname" field"#) {
            $0.linux?.sysctl = ["kernel.hostname": "x"]
        },
        ValidationCase(message: "config.json: mounts[1].destination: must be an absolute path") { $0.mounts?[1].destination = "dev" },
        ValidationCase(message: "config.json: mounts[0].destination: must not be empty") { $0.mounts?[0].destination = "" },
        ValidationCase(message: "config.json: hooks.prestart[0].path: must be an absolute path") {
            $0.hooks = Hooks(prestart: [Hook(path: "hook")])
        },
        ValidationCase(message: "config.json: hooks.poststop[1].timeout: must be greater than zero") {
            $0.hooks = Hooks(poststop: [Hook(path: "/bin/true", timeout: 5), Hook(path: "/bin/true", timeout: 0)])
        },
        ValidationCase(message: #"config.json: linux.namespaces[2].type: duplicate "pid""#) {
            $0.linux?.namespaces = [.init(type: .pid), .init(type: .uts), .init(type: .pid, path: "/proc/1/ns/pid")]
        },
        ValidationCase(message: #"config.json: linux.namespaces[6].type: unknown "foo""#) { $0.linux?.namespaces?.append(.init(type: "foo")) },
        ValidationCase(message: "config.json: linux.namespaces[1].path: must be an absolute path") {
            $0.linux?.namespaces?[1].path = "proc/1/ns/net"
        },
        ValidationCase(message: "config.json: linux.uidMappings: user namespace mappings specified, but user namespace isn't enabled in the config") {
            $0.linux?.uidMappings = [IDMapping(containerID: 0, hostID: 1000, size: 1)]
        },
        ValidationCase(message: #"config.json: linux.devices[0].type: unknown "x" (want c, b, u or p)"#) {
            $0.linux?.devices = [Device(type: "x", path: "/dev/x")]
        },
        ValidationCase(message: "config.json: linux.devices[0].path: must be an absolute path") {
            $0.linux?.devices = [Device(type: .char, path: "dev/null", major: 1, minor: 3)]
        },
        ValidationCase(message: #"config.json: linux.resources.devices[1].type: unknown "z" (want a, c or b)"#) {
            $0.linux?.resources?.devices?.append(DeviceRule(allow: true, type: "z"))
        },
        ValidationCase(message: #"config.json: linux.resources.devices[0].access: invalid "rwx" (want letters of rwm)"#) {
            $0.linux?.resources?.devices?[0].access = "rwx"
        },
        ValidationCase(message: #"config.json: linux.rootfsPropagation: unknown "sideways""#) { $0.linux?.rootfsPropagation = "sideways" },
        ValidationCase(message: "config.json: linux.maskedPaths[11]: must be an absolute path") { $0.linux?.maskedPaths?.append("proc/kcore") },
        ValidationCase(message: "config.json: linux.readonlyPaths[0]: must not be empty") { $0.linux?.readonlyPaths?[0] = "" },
        ValidationCase(message: "config.json: linux.seccomp.defaultAction: must not be empty") { $0.linux?.seccomp = Seccomp(defaultAction: "") },
        ValidationCase(message: #"config.json: linux.seccomp.defaultAction: unknown "SCMP_ACT_MAYBE""#) {
            $0.linux?.seccomp = Seccomp(defaultAction: "SCMP_ACT_MAYBE")
        },
        ValidationCase(message: #"config.json: linux.seccomp.architectures[1]: unknown "SCMP_ARCH_Z80""#) {
            $0.linux?.seccomp = Seccomp(defaultAction: .allow, architectures: [.x86_64, "SCMP_ARCH_Z80"])
        },
        ValidationCase(message: #"config.json: linux.seccomp.flags[0]: unknown "SECCOMP_FILTER_FLAG_X" (want SECCOMP_FILTER_FLAG_TSYNC, SECCOMP_FILTER_FLAG_LOG, SECCOMP_FILTER_FLAG_SPEC_ALLOW or SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV)"#) {
            $0.linux?.seccomp = Seccomp(defaultAction: .allow, flags: ["SECCOMP_FILTER_FLAG_X"])
        },
        ValidationCase(message: "config.json: linux.seccomp.syscalls[1].names: must not be empty") {
            $0.linux?.seccomp = Seccomp(defaultAction: .allow, syscalls: [Syscall(names: ["read"], action: .allow), Syscall(names: [], action: .errno)])
        },
        ValidationCase(message: #"config.json: linux.seccomp.syscalls[0].action: unknown "SCMP_ACT_X""#) {
            $0.linux?.seccomp = Seccomp(defaultAction: .allow, syscalls: [Syscall(names: ["read"], action: "SCMP_ACT_X")])
        },
        ValidationCase(message: "config.json: linux.seccomp.syscalls[0].args[0].index: 6 is out of range (0 to 5)") {
            $0.linux?.seccomp = Seccomp(defaultAction: .allow, syscalls: [Syscall(names: ["read"], action: .errno, args: [SeccompArg(index: 6, value: 0, op: .equal)])])
        },
        ValidationCase(message: #"config.json: linux.seccomp.syscalls[0].args[0].op: unknown "SCMP_CMP_X""#) {
            $0.linux?.seccomp = Seccomp(defaultAction: .allow, syscalls: [Syscall(names: ["read"], action: .errno, args: [SeccompArg(index: 0, value: 0, op: "SCMP_CMP_X")])])
        },
        ValidationCase(message: #"config.json: linux.personality.domain: unknown "LINUX64" (want LINUX or LINUX32)"#) {
            $0.linux?.personality = Personality(domain: "LINUX64")
        },
    ]

    @Test(arguments: cases)
    func eachRuleHasItsMessage(_ test: ValidationCase) {
        var spec = Spec.example()
        test.mutate(&spec)
        #expect(spec.validationErrors().map(\.description) == [test.message])
        #expect(errorMessage { try spec.validate() } == test.message)
    }

    @Test(arguments: ["1.0.0", "1.0.2-dev", "1.1.0", "1.2.0", "1.2.1", "1.2.99+build.5", "1.0.0-rc5"])
    func supportedVersions(_ version: String) {
        var spec = Spec.example()
        spec.ociVersion = version
        #expect(spec.validationErrors() == [])
    }

    @Test func allProblemsAreReportedInDocumentOrder() {
        var spec = Spec.example()
        spec.ociVersion = "9.9.9"
        spec.process?.cwd = "x"
        spec.process?.args = []
        spec.mounts?[0].destination = "proc"
        #expect(spec.validationErrors().map(\.description) == [
            #"config.json: ociVersion: unsupported "9.9.9" (want 1.0.0 to 1.2.x)"#,
            "config.json: process.args: must not be empty",
            "config.json: process.cwd: must be an absolute path",
            "config.json: mounts[0].destination: must be an absolute path",
        ])
    }

    @Test func processDocumentsUseTheirOwnPaths() {
        let process = Spec.Process(args: [], cwd: "tmp")
        #expect(process.validationErrors(file: "process.json").map(\.description) == [
            "process.json: args: must not be empty",
            "process.json: cwd: must be an absolute path",
        ])
        #expect(errorMessage { try process.validate(file: "process.json") } == "process.json: args: must not be empty")
    }

    @Test(arguments: ["1.2.0", "0.0.0", "10.20.30", "1.0.0-alpha.1", "1.0.0+build", "1.0.0-rc.1+build.2"])
    func validSemanticVersions(_ text: String) {
        #expect(SemanticVersion(text) != nil)
    }

    @Test(arguments: ["", "01.2.0", "1.2", "1.2.0.0", "1.2.0-", "1.2.0-a..b", "v1.2.0", "1.2.0+", "1.-2.0", "1.2.x"])
    func invalidSemanticVersions(_ text: String) {
        #expect(SemanticVersion(text) == nil)
    }

    @Test func semanticVersionParts() throws {
        let version = try #require(SemanticVersion("1.0.2-dev+abc.1"))
        #expect(version.major == 1 && version.minor == 0 && version.patch == 2)
        #expect(version.prerelease == "dev")
        #expect(version.description == "1.0.2-dev")
    }
}
