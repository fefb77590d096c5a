import Foundation
import Testing
@testable import OCIBundle

@Suite struct LenientDecodingTests {
    @Test func unknownKeysAreIgnoredAtEveryLevel() throws {
        let spec = try decodeSpec("""
            {
              "ociVersion": "1.2.0",
              "futureTopLevel": {"anything": [1, 2, {"x": null}]},
              "windows": {"layerFolders": ["C:\\\\layers"]},
              "process": {"args": ["sh"], "cwd": "/", "execCPUAffinity": {"initial": "0"}, "user": {"uid": 1, "gid": 2, "sid": "S-1"}},
              "root": {"path": "rootfs", "future": true},
              "linux": {
                "netDevices": {"eth0": {}},
                "seccomp": {"defaultAction": "SCMP_ACT_ALLOW", "future": 1, "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "comment": "hi"}]}
              }
            }
            """)
        #expect(spec.process?.user == User(uid: 1, gid: 2))
        #expect(spec.linux?.seccomp?.syscalls == [Syscall(names: ["read"], action: .allow)])
        #expect(spec.root == Root(path: "rootfs"))
        let encoded = String(decoding: try OCIJSON.encode(spec), as: UTF8.self)
        #expect(!encoded.contains("future"))
    }

    @Test func unknownEnumValuesSurviveDecodingAndEncoding() throws {
        let json = """
            {"ociVersion": "1.2.0",
             "process": {"args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0}, "rlimits": [{"type": "RLIMIT_FUTURE", "hard": 1, "soft": 1}],
                         "capabilities": {"bounding": ["CAP_FUTURE"]},
                         "ioPriority": {"class": "IOPRIO_CLASS_FUTURE", "priority": 1},
                         "scheduler": {"policy": "SCHED_FUTURE", "flags": ["SCHED_FLAG_FUTURE"]}},
             "linux": {"namespaces": [{"type": "future"}], "rootfsPropagation": "sideways",
                       "devices": [{"path": "/dev/x", "type": "q", "major": 1, "minor": 2}],
                       "personality": {"domain": "LINUX128"},
                       "seccomp": {"defaultAction": "SCMP_ACT_FUTURE", "architectures": ["SCMP_ARCH_FUTURE"],
                                   "flags": ["SECCOMP_FILTER_FLAG_FUTURE"],
                                   "syscalls": [{"names": ["x"], "action": "SCMP_ACT_FUTURE",
                                                 "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_FUTURE"}]}]}}}
            """
        let spec = try decodeSpec(json)
        #expect(spec.process?.rlimits?.first?.type == RlimitType("RLIMIT_FUTURE"))
        #expect(spec.process?.rlimits?.first?.type.isKnown == false)
        #expect(spec.process?.capabilities?.bounding == ["CAP_FUTURE"])
        #expect(spec.process?.capabilities?.bounding?.first?.number == nil)
        #expect(spec.process?.ioPriority?.class.rawValue == "IOPRIO_CLASS_FUTURE")
        #expect(spec.process?.scheduler?.policy.rawValue == "SCHED_FUTURE")
        #expect(spec.linux?.namespaces?.first?.type == "future")
        #expect(spec.linux?.rootfsPropagation == "sideways")
        #expect(spec.linux?.devices?.first?.type == "q")
        #expect(spec.linux?.personality?.domain == "LINUX128")
        #expect(spec.linux?.seccomp?.defaultAction == "SCMP_ACT_FUTURE")
        #expect(spec.linux?.seccomp?.syscalls?.first?.args?.first?.op == "SCMP_CMP_FUTURE")
        let encoded = try OCIJSON.encode(spec)
        #expect(try canonicalJSON(encoded) == canonicalJSON(json))
        #expect(try OCIJSON.decode(Spec.self, from: encoded, file: "config.json") == spec)
        // Decoding keeps them; validation is where they are refused (capabilities excepted, as in runc).
        #expect(spec.validationErrors().map(\.description) == [
            "config.json: root: must be set",
            #"config.json: process.rlimits[0].type: unknown "RLIMIT_FUTURE""#,
            #"config.json: process.ioPriority.class: unknown "IOPRIO_CLASS_FUTURE" (want IOPRIO_CLASS_RT, IOPRIO_CLASS_BE or IOPRIO_CLASS_IDLE)"#,
            #"config.json: process.scheduler.policy: unknown "SCHED_FUTURE""#,
            #"config.json: process.scheduler.flags[0]: unknown "SCHED_FLAG_FUTURE""#,
            #"config.json: linux.namespaces[0].type: unknown "future""#,
            #"config.json: linux.devices[0].type: unknown "q" (want c, b, u or p)"#,
            #"config.json: linux.rootfsPropagation: unknown "sideways""#,
            #"config.json: linux.seccomp.defaultAction: unknown "SCMP_ACT_FUTURE""#,
            #"config.json: linux.seccomp.architectures[0]: unknown "SCMP_ARCH_FUTURE""#,
            #"config.json: linux.seccomp.flags[0]: unknown "SECCOMP_FILTER_FLAG_FUTURE" (want SECCOMP_FILTER_FLAG_TSYNC, SECCOMP_FILTER_FLAG_LOG, SECCOMP_FILTER_FLAG_SPEC_ALLOW or SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV)"#,
            #"config.json: linux.seccomp.syscalls[0].action: unknown "SCMP_ACT_FUTURE""#,
            #"config.json: linux.seccomp.syscalls[0].args[0].op: unknown "SCMP_CMP_FUTURE""#,
            #"config.json: linux.personality.domain: unknown "LINUX128" (want LINUX or LINUX32)"#,
        ])
    }

    @Test func knownValuesAreTheConstants() {
        #expect(NamespaceType("pid") == .pid)
        #expect(NamespaceType.pid.isKnown)
        #expect(NamespaceType.known.count == 8)
        #expect(SeccompAction.known.contains(.notify))
        #expect(Capability.kill.number == 5)
        #expect(Capability.checkpointRestore.number == 40)
        #expect(RlimitType.nofile.number == 7)
        #expect(RlimitType.rttime.number == 15)
        #expect(ContainerStatus.paused.description == "paused")
    }

    @Test func missingRequiredFieldsReadAsZeroValuesLikeGo() throws {
        let spec = try decodeSpec(#"{"process": {}, "root": {}, "mounts": [{}], "linux": {"namespaces": [{}], "seccomp": {"syscalls": [{}]}}}"#)
        #expect(spec.ociVersion == "")
        #expect(spec.process == Spec.Process(user: User(uid: 0, gid: 0), cwd: ""))
        #expect(spec.root?.path == "")
        #expect(spec.mounts == [Mount(destination: "")])
        #expect(spec.linux?.namespaces == [Namespace(type: "")])
        #expect(spec.linux?.seccomp?.syscalls == [Syscall(names: [], action: "")])
        #expect(spec.validationErrors().map(\.description) == [
            "config.json: ociVersion: must not be empty",
            "config.json: root.path: must not be empty",
            "config.json: process.args: must not be empty",
            "config.json: process.cwd: must not be empty",
            "config.json: mounts[0].destination: must not be empty",
            "config.json: linux.namespaces[0].type: must not be empty",
            "config.json: linux.seccomp.defaultAction: must not be empty",
            "config.json: linux.seccomp.syscalls[0].names: must not be empty",
            "config.json: linux.seccomp.syscalls[0].action: must not be empty",
        ])
    }

    @Test func nullMeansUnset() throws {
        let spec = try decodeSpec(#"{"ociVersion": "1.0.0", "hostname": null, "process": {"args": null, "cwd": null, "user": null}, "linux": null}"#)
        #expect(spec.hostname == nil)
        #expect(spec.linux == nil)
        #expect(spec.process == Spec.Process(cwd: ""))
    }

    @Test func optionalFieldsAreLeftOutWhenEncoding() throws {
        let json = String(decoding: try OCIJSON.encode(Spec(ociVersion: "1.2.0", root: Root(path: "rootfs"))), as: UTF8.self)
        #expect(try canonicalJSON(json) == #"{"ociVersion":"1.2.0","root":{"path":"rootfs"}}"#)
    }

    @Test func stringsAndNumbersAreDecodedExactly() throws {
        let spec = try decodeSpec(#"""
            {"hostname": "caf\u00e9 \ud83d\ude00 \"q\" \\ \/ \n",
             "process": {"user": {"uid": 4294967295}, "oomScoreAdj": -1000, "cwd": "/",
                         "rlimits": [{"type": "RLIMIT_AS", "hard": 18446744073709551615, "soft": 0}]},
             "linux": {"resources": {"memory": {"limit": -1, "swap": 9223372036854775807}}}}
            """#)
        #expect(spec.hostname == "café 😀 \"q\" \\ / \n")
        #expect(spec.process?.user.uid == UInt32.max)
        #expect(spec.process?.oomScoreAdj == -1000)
        #expect(spec.process?.rlimits?.first?.hard == UInt64.max)
        #expect(spec.linux?.resources?.memory == Memory(limit: -1, swap: Int64.max))
    }
}
