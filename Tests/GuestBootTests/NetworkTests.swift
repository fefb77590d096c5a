import Testing
import Foundation
import PodmanSandbox

/// The container's network (issue 17): a tap in the container's netns wired to the
/// engine's interface with tc mirred redirects, the guest's eth0 configured by the
/// agent. Rootful. Only loopback and namespaces these tests or podman make are ever
/// addressed: a test netns with a veth (10.213.9.0/24), and a podman CNI bridge
/// network of the test's own (10.213.7.0/24).
extension VMBootTests {
    @Suite struct NetworkTests {
        static let work = URL(fileURLWithPath: "/tmp/sm-runc-net-\(getpid())")

        typealias Result = FileOutputCommand.Result

        /// Runs a tool with its output in files (podman leaves conmon behind holding
        /// pipes), in `environment` plus a fixed PATH.
        static func shell(_ tool: String, _ arguments: [String], environment: [String] = []) throws -> Result {
            try FileOutputCommand(scratch: work.path, environment: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root"] + environment)
                .run([tool] + arguments)
        }

        @discardableResult
        static func ip(_ arguments: [String]) throws -> Result { try shell("/usr/sbin/ip", arguments) }

        /// A netns of the test's own with one veth end as eth0 (10.213.9.2/24, default
        /// route via the host end 10.213.9.1) and `extra` commands run in it.
        static func makeNetns(_ name: String, hostEnd: String) throws {
            _ = try? ip(["netns", "del", name])
            _ = try? ip(["link", "del", hostEnd])
            for step in [["netns", "add", name],
                         ["link", "add", hostEnd, "type", "veth", "peer", "name", "eth0", "netns", name],
                         ["addr", "add", "10.213.9.1/24", "dev", hostEnd], ["link", "set", hostEnd, "up"],
                         ["-n", name, "addr", "add", "10.213.9.2/24", "dev", "eth0"], ["-n", name, "link", "set", "eth0", "up"],
                         ["-n", name, "route", "add", "default", "via", "10.213.9.1"]] {
                let result = try ip(step)
                try #require(result.status == 0, "ip \(step.joined(separator: " ")): \(result.stderr)")
            }
        }

        static func links(in netns: String) throws -> String { try ip(["-n", netns, "-br", "link"]).stdout }
        static func qdiscs(in netns: String) throws -> String { try shell("/usr/sbin/tc", ["-n", netns, "qdisc", "show"]).stdout }

        /// Bad input at create: refused with a clear error before anything is made.
        @Test func createRefusesTheHostNetworkAMissingPathAndOtherNamespaces() throws {
            defer { try? FileManager.default.removeItem(at: Self.work) }
            let cases: [(String, [String: Any], String)] = [
                ("host", ["namespaces": [["type": "pid"], ["type": "mount"], ["type": "uts"]]], "cannot share the host's network stack"),
                ("missing", ["namespaces": [["type": "pid"], ["type": "uts"], ["type": "network", "path": "/run/netns/sm-runc-test-no-such-netns"]]],
                 "network path /run/netns/sm-runc-test-no-such-netns: open: no such file or directory"),
                ("uts", ["namespaces": [["type": "pid"], ["type": "uts"], ["type": "network", "path": "/proc/self/ns/uts"]]], "is a uts namespace, not a network namespace"),
            ]
            for (id, linux, message) in cases {
                let bundle = try RunCommandTests.makeBundle(args: ["true"], linux: linux)
                defer { try? FileManager.default.removeItem(at: bundle) }
                let result = try RunCommandTests.runSMRunc(["-b", bundle.path, "net-bad-\(id)"])
                let stderr = String(decoding: result.stderr, as: UTF8.self)
                #expect(result.status != 0, "\(id)")
                #expect(stderr.contains(message), "\(id): \(stderr)")
                #expect(!FileManager.default.fileExists(atPath: RunCommandTests.stateRoot + "/net-bad-\(id)"), "\(id): state left behind")
            }
            // An interface type sm-runc does not wire: refused, and no tap made.
            let netns = "sm-runc-test-dummy"
            _ = try? Self.ip(["netns", "del", netns])
            try #require(try Self.ip(["netns", "add", netns]).status == 0)
            defer { _ = try? Self.ip(["netns", "del", netns]) }
            try #require(try Self.ip(["-n", netns, "link", "add", "b0", "type", "bridge"]).status == 0)
            let bundle = try RunCommandTests.makeBundle(args: ["true"], linux: ["namespaces": [["type": "pid"], ["type": "uts"], ["type": "network", "path": "/run/netns/\(netns)"]]])
            defer { try? FileManager.default.removeItem(at: bundle) }
            let result = try RunCommandTests.runSMRunc(["-b", bundle.path, "net-bad-dummy"])
            let stderr = String(decoding: result.stderr, as: UTF8.self)
            #expect(result.status != 0 && stderr.contains("interface b0 is of type bridge"), "\(stderr)")
            #expect(try !Self.links(in: netns).contains("smtap0"))
        }

        /// `sm-runc run` in a netns the test made: the guest's eth0 has the veth's MAC,
        /// address and route, reaches the host end, and the tap and qdiscs are gone after.
        @Test func theGuestTakesTheVethsIdentityAndNothingIsLeftBehind() throws {
            try requireKVM()
            defer { try? FileManager.default.removeItem(at: Self.work) }
            let netns = "sm-runc-test-veth", hostEnd = "smrt-veth0"
            try Self.makeNetns(netns, hostEnd: hostEnd)
            defer { _ = try? Self.ip(["netns", "del", netns]); _ = try? Self.ip(["link", "del", hostEnd]) }
            let mac = try #require(try Self.ip(["-n", netns, "-br", "link", "show", "eth0"]).stdout.split(separator: " ", omittingEmptySubsequences: true).dropFirst(2).first)
            let bundle = try RunCommandTests.makeBundle(
                args: ["sh", "-c", "ip -o link; ip -o addr; ip route; ping -c 2 -W 10 10.213.9.1"],
                linux: ["namespaces": [["type": "pid"], ["type": "network", "path": "/run/netns/\(netns)"], ["type": "mount"], ["type": "uts"]]],
                applets: ["ip", "ping"])
            defer { try? FileManager.default.removeItem(at: bundle) }
            let result = try RunCommandTests.runSMRunc(["-b", bundle.path, "net-veth"])
            let stdout = String(decoding: result.stdout, as: UTF8.self)
            #expect(result.status == 0, "\(stdout)\n\(String(decoding: result.stderr, as: UTF8.self))")
            #expect(stdout.contains("link/ether \(mac)"), "\(stdout)")
            #expect(stdout.contains("inet 10.213.9.2/24"), "\(stdout)")
            #expect(stdout.contains("default via 10.213.9.1 dev eth0"), "\(stdout)")
            #expect(stdout.contains(" 0% packet loss"), "\(stdout)")
            #expect(try !Self.links(in: netns).contains("smtap0"))
            #expect(try !Self.qdiscs(in: netns).contains("ingress"))

            // A pod: a second container in a netns whose interface a running one has is
            // refused with the reason, and the first keeps its network.
            let root = bundle.appendingPathComponent("state")
            let holder = try RunCommandTests.makeBundle(
                args: ["sh", "-c", "sleep 600"],
                linux: ["namespaces": [["type": "pid"], ["type": "network", "path": "/run/netns/\(netns)"], ["type": "mount"], ["type": "uts"]]])
            defer { try? FileManager.default.removeItem(at: holder) }
            let first = try Self.shell(RunCommandTests.smRunc, ["--root", root.path, "run", "-d", "-b", holder.path, "net-pod-1"])
            #expect(first.status == 0, "\(first.stderr)")
            defer { _ = try? Self.shell(RunCommandTests.smRunc, ["--root", root.path, "delete", "-f", "net-pod-1"]) }
            let second = try Self.shell(RunCommandTests.smRunc, ["--root", root.path, "create", "-b", holder.path, "net-pod-2"])
            #expect(second.status != 0 && second.stderr.contains("is already the network of another sm-runc container"), "\(second.stderr)")
            #expect(try Self.links(in: netns).contains("smtap0"), "the first container's tap was taken")
            _ = try Self.shell(RunCommandTests.smRunc, ["--root", root.path, "delete", "-f", "net-pod-1"])
            #expect(try !Self.links(in: netns).contains("smtap0"))
        }

        // MARK: - podman

        /// A private podman with podman's CNI bridge (its own CNI config directory).
        static var sandbox: PodmanSandbox { PodmanSandbox(directory: work.appendingPathComponent("podman").path, networkNone: false) }

        static var podmanEnvironment: [String] {
            ["CONTAINERS_CONF=" + sandbox.containersConf, "CONTAINERS_STORAGE_CONF=" + sandbox.storageConf]
        }

        static func podman(_ arguments: [String]) throws -> Result {
            try shell("/usr/bin/podman", ["--runtime", RunCommandTests.smRunc] + arguments, environment: podmanEnvironment)
        }

        static let image = "localhost/sm-runc-net-bb"
        static let network = "sm-runc-test-net"

        /// A private podman (its own storage, CNI config directory and bridge network),
        /// and a busybox image with a page to serve.
        static func preparePodman() throws {
            guard FileManager.default.fileExists(atPath: "/usr/bin/podman") else {
                Issue.record("podman is not installed (scripts/setup-deps.sh installs it)")
                throw CancellationError()
            }
            try sandbox.write()
            let rootfs = try RunCommandTests.makeBundle(args: ["true"], applets: ["httpd", "wget", "nslookup", "ip", "sleep"])
            defer { try? FileManager.default.removeItem(at: rootfs) }
            let www = rootfs.appendingPathComponent("rootfs/www")
            try FileManager.default.createDirectory(at: www, withIntermediateDirectories: true)
            try Data("served from a microVM\n".utf8).write(to: www.appendingPathComponent("index.html"))
            let tarball = work.appendingPathComponent("bb.tar").path
            let tar = try shell("/bin/tar", ["-C", rootfs.appendingPathComponent("rootfs").path, "-cf", tarball, "."])
            try #require(tar.status == 0, "\(tar.stderr)")
            let imported = try podman(["import", tarball, image])
            try #require(imported.status == 0, "\(imported.stderr)")
            let created = try podman(["network", "create", "--subnet", "10.213.7.0/24", network])
            try #require(created.status == 0, "\(created.stderr)")
        }

        /// curl through loopback, retried while the guest starts its server.
        static func fetch(_ url: String, seconds: Int) throws -> Result {
            var last = Result(status: -1, stdout: "", stderr: "")
            for _ in 0..<seconds {
                last = try shell("/usr/bin/curl", ["-sS", "-m", "10", url])
                if last.status == 0 { return last }
                sleep(1)
            }
            return last
        }

        /// A one-shot DNS responder (UDP) on `address`:`port`, on a thread: answers one
        /// A query with 192.0.2.77 (TEST-NET-1: never contacted, only printed).
        static func udpResponder(address: String, port: UInt16) throws -> Thread {
            let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
            try #require(fd >= 0)
            var local = sockaddr_in()
            local.sin_family = sa_family_t(AF_INET)
            local.sin_port = port.bigEndian
            inet_pton(AF_INET, address, &local.sin_addr)
            let bound = withUnsafePointer(to: &local) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            try #require(bound == 0, "bind \(address):\(port): \(String(cString: strerror(errno)))")
            var timeout = timeval(tv_sec: 120, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            let thread = Thread {
                defer { close(fd) }
                var query = [UInt8](repeating: 0, count: 512)
                var peer = sockaddr_storage()
                var peerLength = socklen_t(MemoryLayout<sockaddr_storage>.size)
                let n = withUnsafeMutablePointer(to: &peer) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(fd, &query, 512, 0, $0, &peerLength) }
                }
                guard n > 12 else { return }
                var end = 12
                while end < n && query[end] != 0 { end += Int(query[end]) + 1 }
                end += 5
                guard end <= n else { return }
                let reply = Array(query[0..<2]) + [0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0] + Array(query[12..<end])
                    + [0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 77]
                _ = withUnsafePointer(to: &peer) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, reply, reply.count, 0, $0, peerLength) }
                }
            }
            thread.start()
            return thread
        }

        /// The issue's check: podman on its CNI bridge with a published port, a second
        /// container reaching the first by IP, a UDP round trip, `--network none`, and
        /// nothing left after stop and rm.
        @Test func podmanBridgePublishedPortUDPAndNone() throws {
            try requireKVM()
            try Self.preparePodman()
            defer {
                _ = try? Self.podman(["rm", "-a", "-f"])
                _ = try? Self.podman(["network", "rm", "-f", Self.network])
                _ = try? Self.shell("/usr/bin/podman", ["system", "reset", "-f"], environment: Self.podmanEnvironment)
                try? FileManager.default.removeItem(at: Self.work)
            }
            let web = try Self.podman(["run", "-d", "--name", "web1", "--network", Self.network, "-p", "18081:80", Self.image,
                                       "httpd", "-f", "-p", "80", "-h", "/www"])
            try #require(web.status == 0, "\(web.stderr)")
            let page = try Self.fetch("http://127.0.0.1:18081/", seconds: 120)
            #expect(page.status == 0 && page.stdout == "served from a microVM\n", "curl: \(page.stderr)")

            let address = try Self.podman(["inspect", "-f", "{{(index .NetworkSettings.Networks \"\(Self.network)\").IPAddress}}", "web1"])
                .stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(address.hasPrefix("10.213.7."), "web1's address: \(address)")
            let second = try Self.podman(["run", "--rm", "--network", Self.network, Self.image, "wget", "-qO-", "http://\(address)/"])
            #expect(second.status == 0 && second.stdout == "served from a microVM\n", "\(second.stderr)")

            // UDP: the guest's resolver asks a responder on the bridge's gateway.
            let responder = try Self.udpResponder(address: "10.213.7.1", port: 18053)
            _ = responder
            let udp = try Self.podman(["run", "--rm", "--network", Self.network, Self.image, "nslookup", "-port=18053", "udp.test", "10.213.7.1"])
            #expect(udp.status == 0 && udp.stdout.contains("192.0.2.77"), "\(udp.stdout)\n\(udp.stderr)")

            let none = try Self.podman(["run", "--rm", "--network", "none", Self.image, "ip", "-o", "link"])
            #expect(none.status == 0 && none.stdout.contains("1: lo:") && !none.stdout.contains("eth0"), "\(none.stdout)\n\(none.stderr)")

            let sandbox = try Self.podman(["inspect", "-f", "{{.NetworkSettings.SandboxKey}}", "web1"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(try Self.links(in: URL(fileURLWithPath: sandbox).lastPathComponent).contains("smtap0"))
            #expect(try Self.podman(["stop", "-t", "2", "web1"]).status == 0)
            #expect(try Self.podman(["rm", "web1"]).status == 0)
            #expect(!FileManager.default.fileExists(atPath: sandbox), "the netns \(sandbox) outlived rm")
            let rules = try Self.shell("/usr/sbin/iptables-save", []).stdout
            #expect(!rules.contains(address + "/") && !rules.contains("18081"), "iptables rules left for web1")
            #expect(!(try Self.ip(["-br", "link"]).stdout.contains("smtap")), "a tap in the host's netns")
        }
    }
}
