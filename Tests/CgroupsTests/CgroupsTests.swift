import Testing
import Glibc
import OCIBundle
@testable import Cgroups

/// The build hosts' layout: cgroup v1 controllers plus an empty v2 mount ("hybrid").
let hybridMountinfo = """
    31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
    32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
    34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
    35 31 0:32 / /sys/fs/cgroup/memory rw,relatime shared:9 - cgroup cgroup rw,memory
    36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
    38 31 0:35 / /sys/fs/cgroup/net_cls,net_prio rw,relatime - cgroup cgroup rw,net_cls,net_prio
    40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
    41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
    50 23 0:40 / /mnt/with\\040space rw - ext4 /dev/sda rw
    """

@Suite struct HierarchiesTests {
    @Test func hybridHostListsEveryHierarchy() {
        let h = Hierarchies(mountinfo: hybridMountinfo)
        #expect(h.all.map(\.mountPoint) == ["/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpuset", "/sys/fs/cgroup/memory",
                                            "/sys/fs/cgroup/devices", "/sys/fs/cgroup/net_cls,net_prio",
                                            "/sys/fs/cgroup/systemd", "/sys/fs/cgroup/unified"])
        #expect(h.v1("net_prio")?.controllers == ["net_cls", "net_prio"])
        #expect(h.v1("systemd") == nil && h.all[5].controllers == ["name=systemd"])
        #expect(h.v2?.mountPoint == "/sys/fs/cgroup/unified")
        #expect(!h.unifiedOnly)
    }

    @Test func unifiedOnlyHost() {
        let h = Hierarchies(mountinfo: "29 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n")
        #expect(h.unifiedOnly && h.v2?.mountPoint == "/sys/fs/cgroup")
    }

    @Test func escapedAndMalformedLines() {
        #expect(Hierarchies.unescape("/a\\040b\\134c") == "/a b\\c")
        let h = Hierarchies(mountinfo: "garbage\n1 2 3\n41 31 0:38 /sub /x\\040y rw - cgroup2 cgroup2 rw\n")
        #expect(h.all == [Hierarchy(version: .v2, mountPoint: "/x y", root: "/sub")])
    }

    @Test func thisHostHasHierarchies() throws {
        #expect(!(try Hierarchies.current()).all.isEmpty, "no cgroup hierarchy mounted on this host")
    }
}

@Suite struct CgroupPathTests {
    @Test func cgroupfsPaths() throws {
        #expect(try CgroupPath.resolve("/libpod_parent/libpod-abc", id: "abc", systemd: false) == .absolute("/libpod_parent/libpod-abc"))
        #expect(try CgroupPath.resolve("/default/t1", id: "t1", systemd: false) == .absolute("/default/t1"))
        #expect(try CgroupPath.resolve("sub/x", id: "x", systemd: false) == .relative("sub/x"))
        #expect(try CgroupPath.resolve(nil, id: "ctr", systemd: false) == .relative("ctr"))
        #expect(try CgroupPath.resolve("/../../etc//./x/..", id: "i", systemd: false) == .absolute("/etc"))
        #expect(try CgroupPath.resolve("../../x", id: "i", systemd: false) == .relative("x"))
    }

    @Test func systemdPaths() throws {
        #expect(try CgroupPath.resolve("system.slice:docker:abc", id: "abc", systemd: true) == .absolute("/system.slice/docker-abc.scope"))
        #expect(try CgroupPath.resolve("machine-libpod.slice:libpod:x", id: "x", systemd: true)
                == .absolute("/machine.slice/machine-libpod.slice/libpod-x.scope"))
        #expect(try CgroupPath.resolve(":crio:y", id: "y", systemd: true) == .absolute("/system.slice/crio-y.scope"))
        #expect(try CgroupPath.resolve(nil, id: "z", systemd: true) == .absolute("/system.slice/sm-runc-z.scope"))
        #expect(throws: CgroupError.self) { try CgroupPath.resolve("/plain/path", id: "z", systemd: true) }
        #expect(throws: CgroupError.self) { try CgroupPath.resolve("a--b.slice:p:n", id: "z", systemd: true) }
        #expect(throws: CgroupError.self) { try CgroupPath.resolve("../x.slice:p:n", id: "z", systemd: true) }
    }

    @Test func directoriesPerHierarchy() {
        let h = Hierarchies(mountinfo: hybridMountinfo)
        let absolute = Cgroup(.absolute("/libpod_parent/libpod-1"), hierarchies: h, own: [:])
        #expect(absolute.directories.first { $0.hierarchy == "memory" }?.path == "/sys/fs/cgroup/memory/libpod_parent/libpod-1")
        #expect(absolute.directories.first { $0.hierarchy == "" }?.path == "/sys/fs/cgroup/unified/libpod_parent/libpod-1")
        #expect(absolute.directories.count == h.all.count)
        // Relative: below this process's own cgroup, hierarchy by hierarchy.
        let relative = Cgroup(.relative("c1"), hierarchies: h, own: ["memory": "/jobs/42", "": "/", "cpu": "/"])
        #expect(relative.directories.first { $0.hierarchy == "memory" }?.path == "/sys/fs/cgroup/memory/jobs/42/c1")
        #expect(relative.directories.first { $0.hierarchy == "cpu" }?.path == "/sys/fs/cgroup/cpu/c1")
        // A mount whose top is a sub-cgroup (a cgroup namespace) shows paths from there.
        let namespaced = Hierarchies([Hierarchy(version: .v2, mountPoint: "/sys/fs/cgroup", root: "/outer")])
        #expect(Cgroup(.absolute("/outer/c2"), hierarchies: namespaced, own: [:]).directories[0].path == "/sys/fs/cgroup/c2")
    }
}

@Suite struct ResourceWritesTests {
    /// podman's resources (engines.md §7): devices deny-all, pids 2048.
    @Test func podmanOnV1() {
        let writes = ResourceWrites.v1(Resources(devices: [DeviceRule(allow: false, access: "rwm")], pids: Pids(limit: 2048)))
        #expect(writes.first == ControlWrite("devices", "devices.deny", "a *:* rwm"))
        // The VMM's devices come after the spec's rules, /dev/kvm among them.
        #expect(writes.contains(ControlWrite("devices", "devices.allow", "c 10:232 rwm")))
        #expect(writes.contains(ControlWrite("devices", "devices.allow", "c 5:2 rwm")))
        #expect(writes.last == ControlWrite("pids", "pids.max", "2048"))
    }

    @Test func containerdOnV1() {
        let r = Resources(devices: [DeviceRule(allow: false, access: "rwm"), DeviceRule(allow: true, type: .char, major: 136, access: "rwm")],
                          cpu: CPU(shares: 1024))
        let writes = ResourceWrites.v1(r)
        #expect(writes[1] == ControlWrite("devices", "devices.allow", "c 136:* rwm"))
        #expect(writes.contains(ControlWrite("cpu", "cpu.shares", "1024")))
    }

    @Test func limitsOnV1InRuncsOrder() {
        let r = Resources(memory: Memory(limit: 512 << 20, reservation: 256 << 20, swap: 1 << 30),
                          cpu: CPU(shares: 0, quota: 50_000, period: 100_000, cpus: "0", mems: "0"), pids: Pids(limit: -1))
        let writes = ResourceWrites.v1(r).filter { $0.controller != "devices" }
        #expect(writes.map(\.description) == ["memory.limit_in_bytes=536870912", "memory.soft_limit_in_bytes=268435456",
                                              "memory.memsw.limit_in_bytes=1073741824", "cpu.cfs_period_us=100000",
                                              "cpu.cfs_quota_us=50000", "cpuset.cpus=0", "cpuset.mems=0", "pids.max=max"])
        #expect(writes[2].optional)
    }

    @Test func v2Conversions() throws {
        let r = Resources(memory: Memory(limit: 512 << 20, swap: 768 << 20), cpu: CPU(shares: 1024, quota: 50_000),
                          pids: Pids(limit: 100), blockIO: BlockIO(weight: 500), unified: ["memory.high": "400M"])
        #expect(try ResourceWrites.v2(r).map(\.description) == [
            "memory.max=536870912", "memory.swap.max=268435456", "cpu.weight=39", "cpu.max=50000 100000",
            "pids.max=100", "io.weight=default 4950", "memory.high=400M"])
        #expect(try ResourceWrites.v2(Resources(cpu: CPU(quota: -1, period: 20_000))).map(\.description) == ["cpu.max=max 20000"])
        #expect(throws: CgroupError.self) { try ResourceWrites.v2(Resources(memory: Memory(limit: 100, swap: 50))) }
        #expect(throws: CgroupError.self) { try ResourceWrites.v2(Resources(unified: ["../cgroup.procs": "1"])) }
    }
}

/// On this host's real cgroup tree (needs root): a child process joins a fresh cgroup
/// with limits, then the cgroup goes. Fails loudly when not root: CI runs as root.
@Suite struct LiveCgroupTests {
    @Test func childJoinsLimitedCgroupAndItIsRemoved() throws {
        try #require(geteuid() == 0, "this test needs root to write the host's cgroup tree")
        let parent = "/sm-runc-test-\(getpid())"
        let cgroup = try Cgroup.forContainer(cgroupsPath: parent + "/leaf", id: "leaf", systemd: false)
        defer {
            Cgroup.remove(cgroup.directories)
            Cgroup.remove(cgroup.directories.map { .init(hierarchy: $0.hierarchy, path: String($0.path.dropLast("/leaf".count))) })
        }
        try cgroup.create()
        try cgroup.apply(Resources(devices: [DeviceRule(allow: false, access: "rwm")], pids: Pids(limit: 64)))

        var pid: pid_t = 0
        let argv: [UnsafeMutablePointer<CChar>?] = [strdup("/bin/sleep"), strdup("30"), nil]
        defer { argv.forEach { free($0) } }
        #expect(posix_spawn(&pid, "/bin/sleep", nil, nil, argv, nil) == 0)
        defer { kill(pid, SIGKILL); var status: Int32 = 0; waitpid(pid, &status, 0) }
        try cgroup.join(pid: pid)

        let joined = try Cgroup.ownCgroups(pid: pid)
        for directory in cgroup.directories {
            #expect(joined[directory.hierarchy] == parent + "/leaf", "\(directory.hierarchy)")
        }
        let hierarchies = try Hierarchies.current()
        if hierarchies.unifiedOnly {
            #expect(cgroup.read("pids.max", controller: nil)?.trimmingWhitespace == "64")
        } else {
            #expect(cgroup.read("pids.max", controller: "pids")?.trimmingWhitespace == "64")
            let devices = cgroup.read("devices.list", controller: "devices") ?? ""
            #expect(devices.contains("c 10:232 rwm") && !devices.contains("a *:* rwm"), "\(devices)")
            if hierarchies.v1("cpuset") != nil {
                #expect(cgroup.read("cpuset.cpus", controller: "cpuset")?.trimmingWhitespace.isEmpty == false)
            }
        }
        // While the task is inside, the cgroup stays; once it has gone, it is removed.
        kill(pid, SIGKILL)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        #expect(Cgroup.remove(cgroup.directories).isEmpty)
        for directory in cgroup.directories { #expect(access(directory.path, F_OK) != 0, "\(directory.path)") }
    }
}
