import Foundation
import Testing
@testable import OCIBundle

@Suite struct StateTests {
    @Test func roundTrips() throws {
        let state = State(id: "c1", status: .running, pid: 4242, bundle: "/run/b", annotations: ["a": "b"])
        let encoded = try OCIJSON.encode(state)
        #expect(try canonicalJSON(encoded)
            == #"{"annotations":{"a":"b"},"bundle":"/run/b","id":"c1","ociVersion":"1.2.0","pid":4242,"status":"running"}"#)
        #expect(try OCIJSON.decode(State.self, from: encoded, file: "state") == state)
    }

    @Test func compactEncodingIsOneLine() throws {
        let text = String(decoding: try OCIJSON.encodeCompact(State(id: "x", status: .stopped, bundle: "/b/c")), as: UTF8.self)
        #expect(text == #"{"bundle":"/b/c","id":"x","ociVersion":"1.2.0","status":"stopped"}"#)
    }

    @Test(arguments: ContainerStatus.known + ["frozen"])
    func everyStatusRoundTrips(_ status: ContainerStatus) throws {
        let state = State(id: "c", status: status, bundle: "/b")
        #expect(try OCIJSON.decode(State.self, from: OCIJSON.encode(state), file: "state").status == status)
    }

    /// What `runc state` prints: more than the OCI fields, which are ignored.
    @Test func readsRuncStateOutput() throws {
        let state = try OCIJSON.decode(State.self, from: """
            {
              "ociVersion": "1.0.2-dev",
              "id": "abc",
              "pid": 1234,
              "status": "paused",
              "bundle": "/run/containerd/abc",
              "rootfs": "/run/containerd/abc/rootfs",
              "created": "2023-04-01T10:00:00.000000000Z",
              "owner": ""
            }
            """, file: "state")
        #expect(state == State(ociVersion: "1.0.2-dev", id: "abc", status: .paused, pid: 1234, bundle: "/run/containerd/abc"))
    }
}

@Suite struct FeaturesTests {
    /// Shaped like the example of features.md.
    static let document = """
        {
          "ociVersionMin": "1.0.0",
          "ociVersionMax": "1.2.0",
          "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
          "mountOptions": ["async", "bind", "nodev", "ro", "rbind", "rprivate"],
          "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "user", "uts", "time"],
            "capabilities": ["CAP_CHOWN", "CAP_KILL", "CAP_CHECKPOINT_RESTORE"],
            "cgroup": {"v1": true, "v2": true, "systemd": false, "systemdUser": false, "rdma": false},
            "seccomp": {
              "enabled": true,
              "actions": ["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL"],
              "operators": ["SCMP_CMP_EQ", "SCMP_CMP_MASKED_EQ"],
              "archs": ["SCMP_ARCH_X86", "SCMP_ARCH_X86_64"],
              "knownFlags": ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG"],
              "supportedFlags": ["SECCOMP_FILTER_FLAG_LOG"]
            },
            "apparmor": {"enabled": false},
            "selinux": {"enabled": false},
            "intelRdt": {"enabled": false},
            "mountExtensions": {"idmap": {"enabled": false}}
          },
          "annotations": {"org.opencontainers.runc.version": "1.1.5", "io.github.seccomp.libseccomp.version": "2.5.4"},
          "potentiallyUnsafeConfigAnnotations": ["bundle", "org.systemd.property."]
        }
        """

    @Test func roundTripsLosslessly() throws {
        let features = try OCIJSON.decode(Features.self, from: Self.document, file: "features")
        #expect(features.ociVersionMax == "1.2.0")
        #expect(features.hooks == Hooks.names)
        #expect(features.linux?.namespaces?.contains(.time) == true)
        #expect(features.linux?.cgroup == Features.Cgroup(v1: true, v2: true, systemd: false, systemdUser: false, rdma: false))
        #expect(features.linux?.seccomp?.supportedFlags == [.log])
        #expect(features.linux?.seccomp?.operators == [.equal, .maskedEqual])
        #expect(features.linux?.mountExtensions?.idmap?.enabled == false)
        let encoded = try OCIJSON.encode(features)
        #expect(try canonicalJSON(encoded) == canonicalJSON(Self.document))
        #expect(try OCIJSON.decode(Features.self, from: encoded, file: "features") == features)
    }

    @Test func nilMeansUnknownAndIsLeftOut() throws {
        let features = Features(ociVersionMin: "1.0.0", ociVersionMax: "1.2.0", linux: .init(seccomp: .init(enabled: true)))
        #expect(try canonicalJSON(OCIJSON.encode(features)) == #"{"linux":{"seccomp":{"enabled":true}},"ociVersionMax":"1.2.0","ociVersionMin":"1.0.0"}"#)
    }
}
