import Testing
import Foundation
import CPosix

/// The microVM is sized from the bundle (issue 8): a memory limit gives the guest that
/// limit minus the VMM's share, and an allocation past it ends in the guest's OOM
/// killer (exit 137, the VMM gone) while the host's cgroup saw no OOM.
extension VMBootTests {
    @Suite struct ResourceTests {
        typealias Lifecycle = LifecycleTests
        typealias Run = RunCommandTests

        /// Host cgroup v1 memory hierarchy (these hosts are hybrid); nil on pure v2.
        static var memoryV1: String? {
            FileManager.default.fileExists(atPath: "/sys/fs/cgroup/memory/memory.limit_in_bytes") ? "/sys/fs/cgroup/memory" : nil
        }

        @Test func aMemoryLimitSizesTheGuestAndAnAllocationPastItEndsIn137() throws {
            try requireKVM()
            #expect(cposix_set_child_subreaper() == 0)
            let parent = "/sm-runc-resources-\(getpid())"
            defer {
                for hierarchy in (try? FileManager.default.contentsOfDirectory(atPath: "/sys/fs/cgroup")) ?? [] { rmdir("/sys/fs/cgroup/\(hierarchy)\(parent)") }
                rmdir("/sys/fs/cgroup\(parent)")
            }
            let limit = 128 << 20
            // 1. The guest sees about the limit: 128 MiB minus the VMM's 16 MiB is 112 MiB of RAM.
            let sized = try Run.makeBundle(args: ["sh", "-c", "cat /proc/meminfo"],
                                           linux: ["cgroupsPath": parent + "/sized", "resources": ["memory": ["limit": limit]]])
            defer { try? FileManager.default.removeItem(at: sized) }
            let root = sized.appendingPathComponent("state")
            let log = sized.appendingPathComponent("log")
            let run = try Lifecycle.smRunc(["--debug", "--log", log.path, "run", "-b", sized.path, "sized"], root: root)
            let logged = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
            #expect(run.status == 0, "\(run.stderr)\nlog:\n\(logged)")
            let total = run.stdout.split(separator: "\n").first { $0.hasPrefix("MemTotal:") }
                .flatMap { $0.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first }.flatMap { Int($0) }
            let kb = try #require(total, "meminfo:\n\(run.stdout)")
            #expect(kb > 64 << 10 && kb <= 112 << 10, "MemTotal \(kb) kB for a 128 MiB limit")
            #expect(logged.contains("112 MiB RAM"), "log:\n\(logged)")
            #expect(logged.contains("microVM size: 112 MiB, 1 vCPU (memory: linux.resources.memory.limit minus 16 MiB for the VMM"), "log:\n\(logged)")
            print("a 128 MiB memory limit: guest MemTotal \(kb) kB")

            // 2. Past the limit: the guest's OOM killer ends the process (SIGKILL: 137 from
            // the VMM), and says so; the host's OOM killer never acted.
            // dd's buffer is 97% of the guest's RAM: one allocation the kernel grants
            // (its overcommit heuristic refuses more than RAM), which cannot all be resident.
            let hungry = try Run.makeBundle(args: ["dd", "if=/dev/zero", "of=/dev/null", "bs=\(kb * 97 / 100)k", "count=1"],
                                            linux: ["cgroupsPath": parent + "/hungry", "resources": ["memory": ["limit": limit]]], applets: ["dd"])
            defer { try? FileManager.default.removeItem(at: hungry) }
            let hungryRoot = hungry.appendingPathComponent("state")
            let pidFile = hungry.appendingPathComponent("pid")
            let hungryLog = hungry.appendingPathComponent("log")
            let create = try Lifecycle.smRunc(["--debug", "--log", hungryLog.path, "create", "-b", hungry.path, "--pid-file", pidFile.path, "hungry"],
                                              root: hungryRoot)
            #expect(create.status == 0, "\(create.stderr)")
            let pid = try #require(pid_t(try String(contentsOf: pidFile, encoding: .utf8)))
            #expect(try Lifecycle.smRunc(["start", "hungry"], root: hungryRoot).status == 0)
            let status = try #require(Lifecycle.reap(pid))
            #expect(status & 0x7f == SIGKILL, "VMM wait status \(status)")
            #expect(kill(pid, 0) != 0, "the VMM is still there")
            let hungryLogged = (try? String(contentsOf: hungryLog, encoding: .utf8)) ?? ""
            #expect(hungryLogged.contains("killed by the guest's OOM killer"), "log:\n\(hungryLogged.suffix(3000))")
            #expect(try Lifecycle.status("hungry", root: hungryRoot) == "stopped")
            if let memory = Self.memoryV1 {
                // The host cgroup's OOM killer never acted on the VMM.
                let control = (try? String(contentsOfFile: memory + parent + "/hungry/memory.oom_control", encoding: .utf8)) ?? ""
                #expect(control.contains("oom_kill 0"), "memory.oom_control:\n\(control)")
            }
            #expect(try Lifecycle.smRunc(["delete", "hungry"], root: hungryRoot).status == 0)
        }

        /// A CPU quota of 2 CPUs (podman --cpus=2) gives 2 vCPUs: the guest has 2 CPUs
        /// (nproc) and two busy shells accumulate user time on both (guest /proc/stat).
        @Test func twoVCPUsRunThreadsOnBoth() throws {
            try requireKVM()
            let loop = "(i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done)"
            let bundle = try Run.makeBundle(args: ["sh", "-c", "nproc; \(loop) & \(loop) & wait; grep '^cpu[0-9]' /proc/stat"],
                                            linux: ["resources": ["cpu": ["quota": 200_000, "period": 100_000]]],
                                            applets: ["nproc", "grep"])
            defer { try? FileManager.default.removeItem(at: bundle) }
            let log = bundle.appendingPathComponent("log")
            let run = try Lifecycle.smRunc(["--debug", "--log", log.path, "run", "-b", bundle.path, "twocpu"],
                                           root: bundle.appendingPathComponent("state"))
            let logged = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
            #expect(run.status == 0, "\(run.stderr)\nlog:\n\(logged.suffix(3000))")
            let lines = run.stdout.split(separator: "\n")
            #expect(lines.first == "2", "stdout:\n\(run.stdout)")
            #expect(logged.contains("microVM size: 128 MiB, 2 vCPUs (memory: default; vCPUs: the CPU quota/period)"), "log:\n\(logged.prefix(3000))")
            let user = lines.filter { $0.hasPrefix("cpu") }.compactMap { line -> Int? in
                let fields = line.split(separator: " ", omittingEmptySubsequences: true)
                return fields.count > 1 ? Int(fields[1]) : nil
            }
            #expect(user.count == 2 && user.allSatisfy { $0 > 0 }, "user ticks per CPU \(user); stdout:\n\(run.stdout)")
            print("2 vCPUs: nproc \(lines.first ?? "?"), user ticks per CPU \(user)")
        }
    }
}
