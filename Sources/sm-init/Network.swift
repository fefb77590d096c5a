import AgentProtocol
import CGuest
#if canImport(Glibc)
import Glibc
#endif

/// The guest's network, configured after a boot or a restore from what the host
/// read in the container's netns at create: `lo` up; `eth0` (the virtio-net device)
/// with the engine's MAC, MTU, addresses and routes, or, for a container without a
/// network, no `eth0` at all (the driver is unbound: `lo` only, as under runc).
enum GuestNetworkSetup {
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    static func configure(_ network: GuestNetwork?) throws {
        try check(cguest_link_set_up("lo", 1), "bring lo up")
        let name = GuestNetwork.guestInterface
        guard let network else {
            let rc = cguest_link_unbind(name)
            if rc != 0 && rc != -ENOENT {
                say("sm-init: network: unbind \(name): \(String(cString: strerror(-rc))); leaving it down")
            }
            return
        }
        guard let mac = parseMAC(network.mac) else { throw Failure(description: "network: MAC address \"\(network.mac)\"") }
        try check(mac.withUnsafeBufferPointer { cguest_link_set_mac(name, $0.baseAddress) }, "set \(name)'s MAC \(network.mac)")
        try check(cguest_link_set_mtu(name, Int32(network.mtu)), "set \(name)'s MTU \(network.mtu)")
        for (index, address) in network.addresses.enumerated() {
            guard let (ip, prefix) = split(address) else { throw Failure(description: "network: address \"\(address)\"") }
            let label = index == 0 ? name : "\(name):\(index)"
            try check(cguest_address_add(label, ip, Int32(prefix)), "add address \(address) to \(name)")
        }
        try check(cguest_link_set_up(name, 1), "bring \(name) up")
        for route in network.routes {
            let rc: Int32
            if route.destination == "default" {
                rc = cguest_route_add(name, nil, 0, route.gateway)
            } else {
                let (ip, prefix) = split(route.destination) ?? (route.destination, 32)
                rc = cguest_route_add(name, ip, Int32(prefix), route.gateway)
            }
            try check(rc, "add route \(route.destination)\(route.gateway.map { " via \($0)" } ?? "") on \(name)")
        }
    }

    private static func check(_ rc: Int32, _ what: String) throws {
        guard rc == 0 else { throw Failure(description: "network: \(what): \(String(cString: strerror(-rc)))") }
    }

    /// "10.88.0.5/16" -> ("10.88.0.5", 16).
    static func split(_ text: String) -> (String, Int)? {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count <= 2, let first = parts.first, !first.isEmpty else { return nil }
        guard parts.count == 2 else { return (String(first), 32) }
        guard let prefix = Int(parts[1]), (0...32).contains(prefix) else { return nil }
        return (String(first), prefix)
    }

    /// "aa:bb:cc:dd:ee:ff" -> six bytes.
    static func parseMAC(_ text: String) -> [UInt8]? {
        let parts = text.split(separator: ":")
        guard parts.count == 6 else { return nil }
        var bytes: [UInt8] = []
        for part in parts {
            guard part.count == 2, let byte = UInt8(part, radix: 16) else { return nil }
            bytes.append(byte)
        }
        return bytes
    }
}
