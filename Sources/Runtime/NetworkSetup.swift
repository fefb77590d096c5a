import Foundation
import AgentProtocol
import OCIBundle
import CPosix

/// What `create` found and made in the container's network namespace, kept in the
/// plan: the VMM opens the tap there, the agent configures the guest's eth0 from
/// `guest`, and `delete` undoes the wiring.
package struct ContainerNetwork: Codable, Equatable {
    /// `linux.namespaces`' network path.
    package var netnsPath: String
    /// The engine's interface (a veth end, usually `eth0`) whose traffic goes to the tap.
    package var hostInterface: String
    /// The tap made next to it, wired to it both ways with tc mirred redirects.
    package var tap: String
    /// The engine's interface's identity, for the guest.
    package var guest: GuestNetwork
}

/// The container's network, Kata's "tcfilter" model: in the netns the engine made
/// (podman's CNI bridge, containerd's CNI), a tap next to the engine's veth, and on
/// each of the two an ingress qdisc whose filter redirects every frame to the other
/// (`u32 match u8 0 0 action mirred egress redirect`). The veth keeps its addresses,
/// so the engine's port publishing (iptables DNAT to that address), firewall rules
/// and teardown work unchanged; the guest's eth0 takes the veth's MAC, addresses,
/// routes and MTU, so the frames it sends are the ones the netns would have sent.
///
/// Done with iproute2 (`ip`, `tc`) under `nsenter --net=<path>`, at create only,
/// before anything is confined: a few commands per container, each error names the
/// command and its output, and the same words an operator would type to inspect it.
/// (The VMM never runs a program; it only opens the tap, `TapDevice.open`.)
package enum NetworkSetup {
    /// The tap's name in the container's netns.
    package static let tapName = "smtap0"
    /// Interface kinds wired (`ip -d link`'s `linkinfo.info_kind`; none for a plain
    /// Ethernet device moved in).
    package static let supportedKinds: Set<String> = ["veth", "macvlan", ""]

    /// The network for `spec`: nil for a new netns without a path (runc would make an
    /// empty one: the guest gets `lo` only) or a netns with only `lo` (podman
    /// `--network none`). No network entry means the host's network, which a microVM
    /// cannot join: refused. Called by `CreateRequest.validated` once the namespace
    /// paths are checked.
    package static func plan(for spec: Spec, debug: (String) -> Void) throws -> ContainerNetwork? {
        guard let namespace = spec.linux?.namespaces?.first(where: { $0.type == .network }) else {
            throw RuntimeError("linux.namespaces: no \"network\" namespace, so the container would share the host's network " +
                               "(e.g. podman --network host); a microVM has its own kernel and cannot share the host's network stack: " +
                               "give the container a network namespace (podman's default bridge, --network none, or a netns path)")
        }
        guard let path = namespace.path, !path.isEmpty else {
            debug("network: a new network namespace without a path: the guest has lo only")
            return nil
        }
        // The path is a network namespace: `NamespacePaths.check` made sure of every
        // path before this (CreateRequest.validated), the one place that checks them.
        let links = try json(path, ["ip", "-j", "-d", "link", "show"])
        var candidates: [[String: Any]] = []
        var stale = false
        for link in links {
            guard let name = link["ifname"] as? String, name != "lo" else { continue }
            if name == tapName {
                // A tap with carrier is held open: another container's VMM serves it.
                // Several containers in one netns (a pod) cannot each take the engine's
                // interface; refused, never taken from the one that has it.
                if (link["flags"] as? [String] ?? []).contains("LOWER_UP") {
                    throw RuntimeError("network namespace \(path) is already the network of another sm-runc container (its \(tapName) " +
                                       "is in use): each microVM has its own kernel and takes the namespace's interface, so containers " +
                                       "cannot share one network namespace (a pod); give each its own network")
                }
                // Left by a create that failed half-way in this netns: made again below.
                _ = try? run(path, ["ip", "link", "del", tapName])
                stale = true
                continue
            }
            candidates.append(link)
        }
        guard !candidates.isEmpty else {
            debug("network: \(path) has lo only: the guest has lo only")
            return nil
        }
        guard candidates.count == 1, let link = candidates.first, let name = link["ifname"] as? String else {
            let names = candidates.compactMap { $0["ifname"] as? String }.joined(separator: ", ")
            throw RuntimeError("network namespace \(path): interfaces \(names): sm-runc gives the microVM one network interface; more than one is not supported")
        }
        if stale { _ = try? run(path, ["tc", "qdisc", "del", "dev", name, "ingress"]) }
        let kind = ((link["linkinfo"] as? [String: Any])?["info_kind"] as? String) ?? ""
        guard supportedKinds.contains(kind), (link["link_type"] as? String) == "ether" else {
            throw RuntimeError("network namespace \(path): interface \(name) is of type \(kind.isEmpty ? (link["link_type"] as? String ?? "?") : kind); " +
                               "sm-runc wires veth, macvlan and Ethernet interfaces to the microVM")
        }
        guard let mac = link["address"] as? String, let mtu = link["mtu"] as? Int else {
            throw RuntimeError("network namespace \(path): interface \(name): no MAC address or MTU")
        }
        var addresses: [String] = []
        for entry in try json(path, ["ip", "-j", "addr", "show", "dev", name]) {
            for info in entry["addr_info"] as? [[String: Any]] ?? [] {
                guard let local = info["local"] as? String, let prefix = info["prefixlen"] as? Int else { continue }
                if info["family"] as? String == "inet" {
                    addresses.append("\(local)/\(prefix)")
                } else if info["scope"] as? String != "link" {
                    debug("network: \(name): IPv6 address \(local)/\(prefix) not given to the guest (its kernel has no IPv6)")
                }
            }
        }
        var routes: [GuestNetwork.Route] = []
        for route in try json(path, ["ip", "-j", "-4", "route", "show", "dev", name]) {
            guard let destination = route["dst"] as? String else { continue }
            // The prefix routes of the addresses: the guest kernel makes its own.
            if route["protocol"] as? String == "kernel" && route["scope"] as? String == "link" { continue }
            routes.append(.init(destination: destination, gateway: route["gateway"] as? String))
        }
        let network = ContainerNetwork(netnsPath: path, hostInterface: name, tap: tapName,
                                       guest: GuestNetwork(mac: mac, mtu: mtu, addresses: addresses, routes: routes))
        debug("network: \(path): \(kind.isEmpty ? "ethernet" : kind) \(name) \(mac) mtu \(mtu) \(addresses.joined(separator: " ")); routes " +
              routes.map { "\($0.destination)\($0.gateway.map { " via \($0)" } ?? "")" }.joined(separator: ", "))
        return network
    }

    /// Makes the tap and the redirects. On failure, what was made is undone.
    package static func wire(_ network: ContainerNetwork) throws {
        let path = network.netnsPath, veth = network.hostInterface, tap = network.tap
        do {
            try run(path, ["ip", "tuntap", "add", "dev", tap, "mode", "tap"])
            try run(path, ["ip", "link", "set", "dev", tap, "mtu", String(network.guest.mtu), "up"])
            for (from, to) in [(veth, tap), (tap, veth)] {
                try run(path, ["tc", "qdisc", "add", "dev", from, "ingress"])
                try run(path, ["tc", "filter", "add", "dev", from, "parent", "ffff:", "protocol", "all",
                               "u32", "match", "u8", "0", "0", "action", "mirred", "egress", "redirect", "dev", to])
            }
        } catch {
            release(network)
            throw error
        }
    }

    /// Removes the tap (its qdisc and filter go with it) and the veth's ingress qdisc,
    /// if the netns is still there (engines remove it at teardown, taking all of it).
    package static func release(_ network: ContainerNetwork) {
        guard FileManager.default.fileExists(atPath: network.netnsPath) else { return }
        _ = try? run(network.netnsPath, ["ip", "link", "del", "dev", network.tap])
        _ = try? run(network.netnsPath, ["tc", "qdisc", "del", "dev", network.hostInterface, "ingress"])
    }

    // MARK: - running iproute2 in the netns

    /// `nsenter --net=<netns> <arguments>`; its stdout, or an error naming the command
    /// and what it printed. posix_spawn and waitpid, not Foundation's Process (which
    /// needs a CFSocket wakeup pair some hosts cannot make: it hung in the hwkvm L1).
    @discardableResult
    package static func run(_ netns: String, _ arguments: [String]) throws -> Data {
        var outPipe: [Int32] = [-1, -1], errPipe: [Int32] = [-1, -1]
        guard cposix_pipe_cloexec(&outPipe) == 0 else { throw RuntimeError.system("pipe2", "nsenter output") }
        guard cposix_pipe_cloexec(&errPipe) == 0 else {
            close(outPipe[0]); close(outPipe[1])
            throw RuntimeError.system("pipe2", "nsenter errors")
        }
        defer { close(outPipe[0]); close(errPipe[0]) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1)
        posix_spawn_file_actions_adddup2(&actions, errPipe[1], 2)
        let argv = (["nsenter", "--net=\(netns)"] + arguments).map { strdup($0) } + [nil]
        let environment: [String] = ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"]
        let envp = environment.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) }; envp.forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, "/usr/bin/nsenter", &actions, nil, argv, envp)
        close(outPipe[1]); close(errPipe[1])
        guard rc == 0 else { throw RuntimeError.system("spawn", "/usr/bin/nsenter", errno: rc) }
        func drain(_ fd: Int32) -> Data {
            var data = Data()
            var buffer = [UInt8](repeating: 0, count: 65536)
            while data.count < 16 << 20 {
                let n = read(fd, &buffer, buffer.count)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }
                data.append(contentsOf: buffer[0..<n])
            }
            return data
        }
        // ip and tc print little on stderr: reading stdout first cannot block on it.
        let out = drain(outPipe[0]), err = drain(errPipe[0])
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        guard status == 0 else {
            let message = String(decoding: err, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            let how = status & 0x7f == 0 ? "exit \((status >> 8) & 0xff)" : "signal \(status & 0x7f)"
            throw RuntimeError("network: `\(arguments.joined(separator: " "))` in \(netns): \(message.isEmpty ? how : message)")
        }
        return out
    }

    package static func json(_ netns: String, _ arguments: [String]) throws -> [[String: Any]] {
        let data = try run(netns, arguments)
        guard let list = try? JSONSerialization.jsonObject(with: data) as? [[String: Any]] else {
            throw RuntimeError("network: `\(arguments.joined(separator: " "))` in \(netns): output is not a JSON list")
        }
        return list
    }
}
