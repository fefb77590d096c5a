import Testing
import Foundation
import Synchronization
import VMM

/// sm-runc with its snapshot cache (a private SM_RUNC_CACHE): `sm-runc snapshot`
/// makes the file, `run` restores from it instead of booting, and a snapshot that
/// fails its checks makes `run` boot.
extension VMBootTests {
    @Suite(.serialized) struct SnapshotRunTests {
        typealias Lifecycle = LifecycleTests
        typealias Run = RunCommandTests

        /// The private cache of this test process (removed when it ends).
        static let cache: String = {
            let path = "/tmp/sm-snaprun-\(getpid())"
            try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
            atexit { try? FileManager.default.removeItem(atPath: "/tmp/sm-snaprun-\(getpid())") }
            return path
        }()

        static var stateRoot: URL { URL(fileURLWithPath: cache + "/state") }

        struct Timed { var call: Lifecycle.Call; var seconds: Double; var log: String }

        /// `sm-runc --debug --log FILE run -b BUNDLE ID` with SM_RUNC_CACHE = `cacheDirectory`.
        static func run(_ bundle: URL, id: String, cacheDirectory: String = cache, environment: [String: String] = [:]) throws -> Timed {
            let log = cacheDirectory + "/\(id).log"
            unlink(log)
            let began = Date()
            let call = try Lifecycle.smRunc(["--debug", "--log", log, "run", "-b", bundle.path, id], root: stateRoot,
                                            environment: ["SM_RUNC_CACHE": cacheDirectory].merging(environment) { $1 })
            let seconds = Date().timeIntervalSince(began)
            return Timed(call: call, seconds: seconds, log: (try? String(contentsOfFile: log, encoding: .utf8)) ?? "")
        }

        /// `sm-runc snapshot`, once per test process: the snapshot file's path.
        static let made = Mutex<String?>(nil)

        static func snapshot() throws -> String {
            try made.withLock { made in
                if let made { return made }
                let began = Date()
                let call = try Lifecycle.smRunc(["snapshot"], root: stateRoot, environment: ["SM_RUNC_CACHE": cache])
                try #require(call.status == 0, "sm-runc snapshot: \(call.stderr)")
                let path = try #require(call.stdout.split(separator: "\n").first.map(String.init), "stdout: \(call.stdout)")
                print("sm-runc snapshot: \(formatFixed(Date().timeIntervalSince(began), digits: 1)) s; \(call.stdout)")
                made = path
                return path
            }
        }

        static func mode(_ path: String) -> mode_t? {
            var st = stat()
            return stat(path, &st) == 0 ? st.st_mode & 0o7777 : nil
        }

        @Test func snapshotMakesAPrivateFileAndRunStartsFromItMuchFasterThanABoot() throws {
            try requireKVM()
            let bundle = try Run.makeBundle(args: ["sh", "-c", "echo from the container; echo err >&2; exit 5"])
            defer { try? FileManager.default.removeItem(at: bundle) }
            // A boot first (no snapshot for this cache yet, or made by another test: forced off).
            let booted = try Self.run(bundle, id: "snaprun-boot", environment: ["SM_RUNC_SNAPSHOT": "off"])
            #expect(booted.call.status == 5, "stderr: \(booted.call.stderr)\nlog:\n\(booted.log)")
            #expect(booted.call.stdout == "from the container\n")
            #expect(booted.log.contains("booted: no snapshot"), "log:\n\(booted.log)")

            let path = try Self.snapshot()
            #expect(path.hasPrefix(Self.cache + "/snapshots/") && path.hasSuffix(".snap"))
            #expect(Self.mode(path) == 0o600)
            #expect(Self.mode(Self.cache + "/snapshots") == 0o700)

            let restored = try Self.run(bundle, id: "snaprun-restore")
            #expect(restored.call.status == 5, "stderr: \(restored.call.stderr)\nlog:\n\(restored.log)")
            #expect(restored.call.stdout == "from the container\n")
            #expect(restored.call.stderr == "err\n")
            #expect(restored.log.contains("started from snapshot \(path) (restore "), "log:\n\(restored.log)")
            #expect(restored.log.contains("sm-init: resumed uptime="), "log:\n\(restored.log)")
            #expect(!restored.log.contains("booted: no snapshot"), "log:\n\(restored.log)")
            #expect(restored.seconds * 2 < booted.seconds,
                    "run from the snapshot \(restored.seconds) s, booted \(booted.seconds) s")
            let restore = restored.log.range(of: "(restore ").map { String(restored.log[$0.upperBound...].prefix { $0 != ")" }) } ?? "?"
            print("sm-runc run (create+start+output+delete): booted \(formatFixed(booted.seconds, digits: 2)) s, " +
                  "from the snapshot \(formatFixed(restored.seconds, digits: 2)) s (VMM restore \(restore))")
        }

        @Test func twoContainersFromOneSnapshotDoNotSeeEachOthersWrites() throws {
            try requireKVM()
            _ = try Self.snapshot()
            let names = ["left", "right"]
            let bundles = try names.map { name in
                try Run.makeBundle(args: ["sh", "-c", "echo \(name) > /written-by-\(name); ls /; cat /written-by-*"], applets: ["ls"])
            }
            defer { for bundle in bundles { try? FileManager.default.removeItem(at: bundle) } }
            let results = Mutex<[String: Timed]>([:])
            let failures = Mutex<[String]>([])
            DispatchQueue.concurrentPerform(iterations: names.count) { i in
                do {
                    let timed = try Self.run(bundles[i], id: "snaprun-\(names[i])")
                    results.withLock { $0[names[i]] = timed }
                } catch {
                    failures.withLock { $0.append("\(names[i]): \(error)") }
                }
            }
            #expect(failures.withLock { $0 }.isEmpty)
            for (i, name) in names.enumerated() {
                let other = names[1 - i]
                let timed = try #require(results.withLock { $0[name] })
                #expect(timed.call.status == 0, "stderr: \(timed.call.stderr)\nlog:\n\(timed.log)")
                #expect(timed.log.contains("started from snapshot"), "log:\n\(timed.log)")
                #expect(timed.call.stdout.contains("written-by-\(name)"), "stdout: \(timed.call.stdout)")
                #expect(!timed.call.stdout.contains("written-by-\(other)"), "stdout: \(timed.call.stdout)")
                #expect(timed.call.stdout.hasSuffix("\(name)\n"), "stdout: \(timed.call.stdout)")
                let rootfs = bundles[i].appendingPathComponent("rootfs")
                #expect(try String(contentsOf: rootfs.appendingPathComponent("written-by-\(name)"), encoding: .utf8) == "\(name)\n")
                #expect(!FileManager.default.fileExists(atPath: rootfs.appendingPathComponent("written-by-\(other)").path))
            }
        }

        /// With an empty cache, the first `run` makes the snapshot (a boot to the agent's
        /// snapshot point, nothing of the container in it) and starts from it; the second
        /// starts from it straight away. Then a snapshot of another kernel put at this
        /// kernel's place is refused by its identity: that run boots, says why, and sets
        /// the file aside so the next container makes a good one.
        @Test func theFirstRunMakesTheSnapshotAndAMismatchedOneIsRefused() throws {
            try requireKVM()
            let original = try Self.snapshot()
            let cache = Self.cache + "/first-use"
            try? FileManager.default.removeItem(atPath: cache)
            try FileManager.default.createDirectory(atPath: cache, withIntermediateDirectories: true)
            // A kernel of its own (the same one plus a byte past its ELF contents): its
            // snapshots have another key and another identity than the shared cache's.
            let kernel = cache + "/vmlinux"
            var image = try Data(contentsOf: URL(fileURLWithPath: GuestArtifacts.kernel()))
            image.append(0)
            try image.write(to: URL(fileURLWithPath: kernel))
            let environment = ["SM_RUNC_KERNEL": kernel]
            let bundle = try Run.makeBundle(args: ["sh", "-c", "echo first use; exit 3"])
            defer { try? FileManager.default.removeItem(at: bundle) }

            let first = try Self.run(bundle, id: "snaprun-first", cacheDirectory: cache, environment: environment)
            #expect(first.call.status == 3, "stderr: \(first.call.stderr)\nlog:\n\(first.log)")
            #expect(first.call.stdout == "first use\n")
            let madeLine = try #require(first.log.split(separator: "\n").first { $0.contains("made snapshot ") }, "log:\n\(first.log)")
            let made = try #require(madeLine.range(of: "made snapshot ").map { String(madeLine[$0.upperBound...].prefix { $0 != " " }) })
            #expect(made.hasPrefix(cache + "/snapshots/") && made != original.replacingOccurrences(of: Self.cache, with: cache))
            #expect(Self.mode(made) == 0o600)
            #expect(first.log.contains("started from snapshot \(made) (restore "), "log:\n\(first.log)")

            let second = try Self.run(bundle, id: "snaprun-second", cacheDirectory: cache, environment: environment)
            #expect(second.call.status == 3 && second.call.stdout == "first use\n", "log:\n\(second.log)")
            #expect(second.log.contains("started from snapshot \(made) (restore "), "log:\n\(second.log)")
            #expect(!second.log.contains("made snapshot"), "log:\n\(second.log)")

            // The shared cache's snapshot (the unmodified kernel) in this kernel's place.
            try FileManager.default.removeItem(atPath: made)
            try FileManager.default.copyItem(atPath: original, toPath: made)
            chmod(made, 0o600)
            let mismatched = try Self.run(bundle, id: "snaprun-mismatch", cacheDirectory: cache, environment: environment)
            #expect(mismatched.call.status == 3 && mismatched.call.stdout == "first use\n", "log:\n\(mismatched.log)")
            #expect(mismatched.log.contains("booted: no snapshot (\(made) refused: "), "log:\n\(mismatched.log)")
            #expect(mismatched.log.contains("kernel"), "log:\n\(mismatched.log)")
            #expect(!mismatched.log.contains("started from snapshot"), "log:\n\(mismatched.log)")
            #expect(!FileManager.default.fileExists(atPath: made), "the refused snapshot is still in use")
            #expect(FileManager.default.fileExists(atPath: made + ".refused"))
            print("first use: made and started in \(formatFixed(first.seconds, digits: 1)) s, then \(formatFixed(second.seconds, digits: 1)) s; " +
                  "mismatch booted in \(formatFixed(mismatched.seconds, digits: 1)) s: " +
                  (mismatched.log.split(separator: "\n").first { $0.contains("refused") }.map { String($0.suffix(160)) } ?? ""))
        }

        /// A bind mount (which makes the container's binds share read-write) does not
        /// keep a container from the snapshot: in an empty cache of its own, the first
        /// run makes the snapshot and starts from it, the second starts from it
        /// straight away, and both write through the bind to the host.
        @Test func aBundleWithABindMountStartsFromTheSnapshotItsFirstRunMade() throws {
            try requireKVM()
            let cache = Self.cache + "/bind-mount"
            try? FileManager.default.removeItem(atPath: cache)
            try FileManager.default.createDirectory(atPath: cache, withIntermediateDirectories: true)
            let volume = cache + "/volume"
            try FileManager.default.createDirectory(atPath: volume, withIntermediateDirectories: true)
            let bundle = try Run.makeBundle(
                args: ["sh", "-c", "echo \"$0\" > /data/$0; cat /data/$0"],
                mounts: [["destination": "/data", "type": "bind", "source": volume, "options": ["rbind", "rw"]]])
            defer { try? FileManager.default.removeItem(at: bundle) }
            // The run's argument $0 names the file it writes.
            func run(_ name: String) throws -> Timed {
                let config = bundle.appendingPathComponent("config.json")
                var json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: config)) as? [String: Any])
                var process = try #require(json["process"] as? [String: Any])
                process["args"] = ["sh", "-c", "echo \"$0\" > /data/$0; cat /data/$0", name]
                json["process"] = process
                try JSONSerialization.data(withJSONObject: json).write(to: config)
                return try Self.run(bundle, id: "snaprun-bind-\(name)", cacheDirectory: cache)
            }

            let first = try run("first")
            #expect(first.call.status == 0 && first.call.stdout == "first\n", "stderr: \(first.call.stderr)\nlog:\n\(first.log)")
            let madeLine = try #require(first.log.split(separator: "\n").first { $0.contains("made snapshot ") }, "log:\n\(first.log)")
            let made = try #require(madeLine.range(of: "made snapshot ").map { String(madeLine[$0.upperBound...].prefix { $0 != " " }) })
            #expect(made.hasPrefix(cache + "/snapshots/") && made.hasSuffix(".snap"), "\(made)")
            #expect(first.log.contains("started from snapshot \(made) (restore "), "log:\n\(first.log)")
            #expect(!first.log.contains("booted: no snapshot"), "log:\n\(first.log)")
            #expect(try String(contentsOfFile: volume + "/first", encoding: .utf8) == "first\n")

            let second = try run("second")
            #expect(second.call.status == 0 && second.call.stdout == "second\n", "stderr: \(second.call.stderr)\nlog:\n\(second.log)")
            #expect(second.log.contains("started from snapshot \(made) (restore "), "log:\n\(second.log)")
            #expect(!second.log.contains("made snapshot"), "log:\n\(second.log)")
            #expect(!second.log.contains("booted: no snapshot"), "log:\n\(second.log)")
            #expect(try String(contentsOfFile: volume + "/second", encoding: .utf8) == "second\n")
            #expect(second.seconds * 2 < first.seconds, "second run \(second.seconds) s, first (made the snapshot) \(first.seconds) s")
            func restore(_ log: String) -> String {
                log.range(of: "(restore ").map { String(log[$0.upperBound...].prefix { $0 != ")" }) } ?? "?"
            }
            print("bind mount: first run \(formatFixed(first.seconds, digits: 2)) s (\(madeLine.range(of: "on first use: ").map { madeLine[$0.upperBound...].prefix { $0 != "\"" } } ?? ""); " +
                  "restore \(restore(first.log))), second run \(formatFixed(second.seconds, digits: 2)) s (restore \(restore(second.log)))")
        }

        @Test func aCorruptedSnapshotMakesRunBootAndSayWhy() throws {
            try requireKVM()
            let path = try Self.snapshot()
            // A cache of its own holding a copy with one byte flipped.
            let corruptCache = Self.cache + "/corrupt"
            try FileManager.default.createDirectory(atPath: corruptCache + "/snapshots", withIntermediateDirectories: true)
            chmod(corruptCache + "/snapshots", 0o700)
            let name = URL(fileURLWithPath: path).lastPathComponent
            let copy = corruptCache + "/snapshots/" + name
            var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
            bytes[300] ^= 0x5a
            try bytes.write(to: URL(fileURLWithPath: copy))
            chmod(copy, 0o600)
            for file in ["file-hashes"] {
                try? FileManager.default.copyItem(atPath: Self.cache + "/snapshots/" + file, toPath: corruptCache + "/snapshots/" + file)
            }
            let bundle = try Run.makeBundle(args: ["sh", "-c", "echo booted anyway; exit 7"])
            defer { try? FileManager.default.removeItem(at: bundle) }
            let timed = try Self.run(bundle, id: "snaprun-corrupt", cacheDirectory: corruptCache)
            #expect(timed.call.status == 7, "stderr: \(timed.call.stderr)\nlog:\n\(timed.log)")
            #expect(timed.call.stdout == "booted anyway\n")
            #expect(timed.log.contains("booted: no snapshot (\(copy) refused: "), "log:\n\(timed.log)")
            #expect(timed.log.contains("corrupted"), "log:\n\(timed.log)")
            #expect(!timed.log.contains("started from snapshot"), "log:\n\(timed.log)")
            print("corrupted snapshot: booted in \(formatFixed(timed.seconds, digits: 1)) s; " +
                  (timed.log.split(separator: "\n").first { $0.contains("booted: no snapshot") }.map(String.init) ?? ""))
        }
    }
}
