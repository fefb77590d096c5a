import Testing
import Foundation
import VMM

/// `sm-runc run` end to end: a busybox bundle booted in a microVM, stdout and stderr
/// byte-exact in files, the exit status propagated; bad input gets runc's wording.
extension VMBootTests {
    @Suite struct RunCommandTests {
        static var smRunc: String {
            URL(fileURLWithPath: GuestArtifacts.searchDirectories[0]).deletingLastPathComponent().appendingPathComponent("sm-runc").path
        }

        /// `mounts` come after /proc; `linux` is merged into the spec's `linux`.
        static func makeBundle(args: [String], readonly: Bool = false, process extra: [String: Any] = [:],
                               mounts: [[String: Any]] = [], linux: [String: Any] = [:], applets: [String] = [],
                               annotations: [String: String] = [:]) throws -> URL {
            let bundle = FileManager.default.temporaryDirectory.appendingPathComponent("sm-runc-run-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
            let rootfs = bundle.appendingPathComponent("rootfs")
            for dir in ["bin", "proc", "dev", "tmp"] {
                try FileManager.default.createDirectory(at: rootfs.appendingPathComponent(dir), withIntermediateDirectories: true)
            }
            try FileManager.default.copyItem(atPath: "/bin/busybox", toPath: rootfs.appendingPathComponent("bin/busybox").path)
            for applet in ["sh", "echo", "printf", "cat", "hostname"] + applets {
                try FileManager.default.createSymbolicLink(atPath: rootfs.appendingPathComponent("bin/\(applet)").path, withDestinationPath: "busybox")
            }
            let process: [String: Any] = ["terminal": false, "user": ["uid": 0, "gid": 0], "args": args, "env": ["PATH=/bin"], "cwd": "/tmp"]
            var config: [String: Any] = [
                "ociVersion": "1.2.0",
                "process": process.merging(extra) { $1 },
                "root": ["path": "rootfs", "readonly": readonly],
                "hostname": "runtest",
                "mounts": [["destination": "/proc", "type": "proc", "source": "proc"]] + mounts,
                "linux": ["namespaces": [["type": "pid"], ["type": "network"], ["type": "mount"], ["type": "uts"]]].merging(linux) { $1 },
            ]
            if !annotations.isEmpty { config["annotations"] = annotations }
            try JSONSerialization.data(withJSONObject: config).write(to: bundle.appendingPathComponent("config.json"))
            return bundle
        }

        struct Result { var status: Int32; var stdout: [UInt8]; var stderr: [UInt8] }

        /// The `--root` runSMRunc passes (the container's state is `<stateRoot>/<id>`).
        static var stateRoot: String {
            FileManager.default.temporaryDirectory.appendingPathComponent("sm-runc-state-\(getpid())").path
        }

        static func runSMRunc(_ arguments: [String], stdin: URL? = nil, root: String? = nil) throws -> Result {
            let directory = FileManager.default.temporaryDirectory
            let out = directory.appendingPathComponent("sm-runc-out-\(getpid())"), err = directory.appendingPathComponent("sm-runc-err-\(getpid())")
            FileManager.default.createFile(atPath: out.path, contents: nil)
            FileManager.default.createFile(atPath: err.path, contents: nil)
            defer { try? FileManager.default.removeItem(at: out); try? FileManager.default.removeItem(at: err) }
            let process = Process()
            process.executableURL = URL(fileURLWithPath: smRunc)
            process.arguments = ["run", "--root", root ?? stateRoot] + arguments
            process.standardInput = try stdin.map { try FileHandle(forReadingFrom: $0) } ?? FileHandle.nullDevice
            process.standardOutput = try FileHandle(forWritingTo: out)
            process.standardError = try FileHandle(forWritingTo: err)
            try process.run()
            process.waitUntilExit()
            return Result(status: process.terminationStatus, stdout: Array(try Data(contentsOf: out)), stderr: Array(try Data(contentsOf: err)))
        }

        @Test func runPrintsAndReturnsTheExitCode() throws {
            try requireKVM()
            let bundle = try Self.makeBundle(args: ["sh", "-c", "printf 'out \\001\\377 no newline'; echo err >&2; hostname; exit 3"])
            defer { try? FileManager.default.removeItem(at: bundle) }
            let result = try Self.runSMRunc(["-b", bundle.path, "run-exit-3"])
            #expect(result.status == 3, "stderr: \(String(decoding: result.stderr, as: UTF8.self))")
            #expect(result.stdout == Array("out ".utf8) + [1, 255] + Array(" no newlineruntest\n".utf8))
            #expect(result.stderr == Array("err\n".utf8))
        }

        @Test func stdinReachesTheProcessAndItsEndIsSeen() throws {
            try requireKVM()
            let bundle = try Self.makeBundle(args: ["sh", "-c", "cat; echo \"[eof]\""])
            defer { try? FileManager.default.removeItem(at: bundle) }
            let input = bundle.appendingPathComponent("input.txt")
            try Data("line one\nline two, no newline".utf8).write(to: input)
            let result = try Self.runSMRunc(["-b", bundle.path, "run-stdin"], stdin: input)
            #expect(result.status == 0, "stderr: \(String(decoding: result.stderr, as: UTF8.self))")
            #expect(String(decoding: result.stdout, as: UTF8.self) == "line one\nline two, no newline[eof]\n")
            // And with /dev/null: cat sees EOF at once.
            let empty = try Self.runSMRunc(["-b", bundle.path, "run-stdin-null"])
            #expect(String(decoding: empty.stdout, as: UTF8.self) == "[eof]\n")
        }

        @Test func aSignalToRunReachesTheContainerProcess() throws {
            try requireKVM()
            let bundle = try Self.makeBundle(args: ["sh", "-c", "trap 'echo got TERM; exit 7' TERM; echo started; while :; do read -t 1 x; done"])
            defer { try? FileManager.default.removeItem(at: bundle) }
            let out = bundle.appendingPathComponent("out"), err = bundle.appendingPathComponent("err")
            FileManager.default.createFile(atPath: out.path, contents: nil)
            FileManager.default.createFile(atPath: err.path, contents: nil)
            let process = Process()
            process.executableURL = URL(fileURLWithPath: Self.smRunc)
            process.arguments = ["run", "--root", bundle.appendingPathComponent("state").path, "-b", bundle.path, "run-signal"]
            process.standardInput = FileHandle.nullDevice
            process.standardOutput = try FileHandle(forWritingTo: out)
            process.standardError = try FileHandle(forWritingTo: err)
            try process.run()
            let deadline = Date().addingTimeInterval(240)
            while Date() < deadline, process.isRunning, !((try? String(contentsOf: out, encoding: .utf8)) ?? "").contains("started") {
                usleep(200_000)
            }
            process.terminate()                      // SIGTERM to sm-runc
            process.waitUntilExit()
            #expect(process.terminationStatus == 7, "stderr: \((try? String(contentsOf: err, encoding: .utf8)) ?? "")")
            #expect(try String(contentsOf: out, encoding: .utf8) == "started\ngot TERM\n")
        }

        /// A signal that reaches `run` while its container is still being made (here as
        /// soon as its VMM exists, seconds before the guest can start a process) aborts
        /// the run: exit 128+15, the VMM killed, no state and no process left. This is
        /// what ends a boot that hangs under Ctrl-C or a `timeout`.
        @Test func aSignalBeforeTheProcessStartedAbortsTheRunAndLeavesNothing() throws {
            try requireKVM()
            let id = "run-abort-\(getpid())"
            let bundle = try Self.makeBundle(args: ["sh", "-c", "trap '' TERM; echo started; while :; do read -t 1 x; done"])
            defer { try? FileManager.default.removeItem(at: bundle) }
            let root = bundle.appendingPathComponent("state").path
            let log = bundle.appendingPathComponent("debug.log").path
            let process = Process()
            process.executableURL = URL(fileURLWithPath: Self.smRunc)
            process.arguments = ["--debug", "--log", log, "run", "--root", root, "-b", bundle.path, id]
            process.standardInput = FileHandle.nullDevice
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            // The processes whose command line names this container: `run` and its VMM.
            func processes() throws -> [[Substring]] {
                try FileManager.default.contentsOfDirectory(atPath: "/proc").compactMap { name in
                    guard Int32(name) != nil, let cmdline = FileManager.default.contents(atPath: "/proc/\(name)/cmdline") else { return nil }
                    let words = String(decoding: cmdline, as: UTF8.self).split(separator: "\0")
                    return words.contains(Substring(id)) ? words : nil
                }
            }
            // Until the VMM is spawned (it then needs seconds to restore or boot and start).
            let deadline = Date().addingTimeInterval(120)
            while Date() < deadline, process.isRunning, try !processes().contains(where: { $0.contains("vmm") }) { usleep(10_000) }
            process.terminate()                      // SIGTERM to sm-runc, before the process can start
            process.waitUntilExit()
            let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            #expect(process.terminationReason == .exit && process.terminationStatus == 128 + SIGTERM, "log: \(text.suffix(600))")
            #expect(text.contains("interrupted by signal 15 before its process started"), "log: \(text.suffix(600))")
            #expect(access("\(root)/\(id)", F_OK) != 0, "the state directory is left")
            let left = try processes()
            #expect(left.isEmpty, "processes of \(id) left: \(left)")
        }

        @Test func theProcessGetsItsUserLimitsAndPrivileges() throws {
            try requireKVM()
            let bundle = try Self.makeBundle(
                args: ["sh", "-c", "echo $(id -u):$(id -g) $(ulimit -n) $(cat /proc/self/oom_score_adj) $(grep NoNewPrivs /proc/self/status | tr -d '\\t '); grep -E '^Cap(Inh|Prm|Eff|Bnd|Amb)' /proc/self/status | tr -d '\\t'"],
                process: [
                    "user": ["uid": 1000, "gid": 100, "umask": 18],
                    // As a non-root exec leaves them: only the ambient capability stays
                    // permitted and effective; the bounding set is what the spec says.
                    "capabilities": [
                        "bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                        "effective": ["CAP_KILL", "CAP_NET_BIND_SERVICE"],
                        "permitted": ["CAP_KILL", "CAP_NET_BIND_SERVICE"],
                        "inheritable": ["CAP_NET_BIND_SERVICE"],
                        "ambient": ["CAP_NET_BIND_SERVICE", "CAP_NOT_A_THING"],
                    ],
                    "rlimits": [["type": "RLIMIT_NOFILE", "soft": 321, "hard": 654]],
                    "oomScoreAdj": 250,
                    "noNewPrivileges": true,
                    "cwd": "/",
                ])
            defer { try? FileManager.default.removeItem(at: bundle) }
            for applet in ["id", "grep", "tr"] {
                try FileManager.default.createSymbolicLink(atPath: bundle.appendingPathComponent("rootfs/bin/\(applet)").path, withDestinationPath: "busybox")
            }
            let result = try Self.runSMRunc(["-b", bundle.path, "run-user"])
            #expect(result.status == 0, "stderr: \(String(decoding: result.stderr, as: UTF8.self))")
            #expect(String(decoding: result.stdout, as: UTF8.self) == """
                1000:100 321 250 NoNewPrivs:1
                CapInh:0000000000000400
                CapPrm:0000000000000400
                CapEff:0000000000000400
                CapBnd:0000000000000421
                CapAmb:0000000000000400

                """)
        }

        @Test func aReadonlyRootRefusesWritesButKeepsItsMounts() throws {
            try requireKVM()
            let bundle = try Self.makeBundle(
                args: ["sh", "-c", "echo x > /newfile || echo refused; cat /proc/sys/kernel/hostname; echo tmp > /tmp/t 2>&1 || echo tmp-refused"],
                readonly: true)
            defer { try? FileManager.default.removeItem(at: bundle) }
            let result = try Self.runSMRunc(["-b", bundle.path, "run-readonly"])
            #expect(result.status == 0, "stderr: \(String(decoding: result.stderr, as: UTF8.self))")
            #expect(String(decoding: result.stdout, as: UTF8.self) == "refused\nruntest\ntmp-refused\n")
            #expect(String(decoding: result.stderr, as: UTF8.self).contains("Read-only file system"))
            #expect(!FileManager.default.fileExists(atPath: bundle.appendingPathComponent("rootfs/newfile").path))
        }

        @Test func specWritesAValidConfigOnceAndRefusesToOverwrite() throws {
            let bundle = try Self.makeBundle(args: ["true"])
            defer { try? FileManager.default.removeItem(at: bundle) }
            let config = bundle.appendingPathComponent("config.json")
            try FileManager.default.removeItem(at: config)
            func spec() throws -> (Int32, String) {
                let process = Process()
                process.executableURL = URL(fileURLWithPath: Self.smRunc)
                process.arguments = ["spec", "--bundle", bundle.path]
                let err = Pipe()
                process.standardError = err
                try process.run()
                process.waitUntilExit()
                return (process.terminationStatus, String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self))
            }
            #expect(try spec().0 == 0)
            let json = try String(contentsOf: config, encoding: .utf8)
            #expect(json.contains("\"ociVersion\" : \"1.2.0\""))
            #expect(json.contains("\"destination\" : \"/proc\""))
            let (status, message) = try spec()
            #expect(status == 1)
            #expect(message.contains("File \(config.path) exists. Remove it first"))
        }

        @Test func featuresIsAValidFeaturesDocument() throws {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: Self.smRunc)
            process.arguments = ["features"]
            let out = Pipe()
            process.standardOutput = out
            try process.run()
            let data = out.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            #expect(process.terminationStatus == 0)
            let document = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
            #expect(document["ociVersionMin"] as? String == "1.0.0")
            #expect(document["ociVersionMax"] as? String == "1.2.0")
            let linux = try #require(document["linux"] as? [String: Any])
            let seccomp = try #require(linux["seccomp"] as? [String: Any])
            #expect(seccomp["enabled"] as? Bool == true)
            #expect((seccomp["actions"] as? [String])?.contains("SCMP_ACT_ERRNO") == true)
            #expect((seccomp["actions"] as? [String])?.contains("SCMP_ACT_NOTIFY") == false)
            #expect((document["hooks"] as? [String])?.count == 6)
            #expect((document["mountOptions"] as? [String])?.contains("rbind") == true)
        }

        @Test func badInputGetsAClearErrorAndLeavesNothing() throws {
            let missing = try Self.runSMRunc(["-b", "/nonexistent-bundle", "x"])
            #expect(missing.status == 1)
            #expect(String(decoding: missing.stderr, as: UTF8.self).contains("/nonexistent-bundle/config.json: no such file or directory"))
            let badID = try Self.runSMRunc(["-b", "/tmp", "../escape"])
            #expect(badID.status == 1)
            #expect(String(decoding: badID.stderr, as: UTF8.self).contains("invalid container ID format"))
        }
    }
}
