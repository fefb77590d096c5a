/// The container's network interface as the engine made it in the container's
/// network namespace, read by the host at create and given to the agent with
/// `create`: the agent configures the guest's `eth0` (the virtio-net device) with it
/// after a boot or a snapshot restore (the snapshot holds no network identity).
public struct GuestNetwork: Codable, Equatable, Sendable {
    /// The engine's interface's MAC address, "aa:bb:cc:dd:ee:ff".
    public var mac: String
    public var mtu: Int
    /// IPv4 addresses with their prefix length, "10.88.0.5/16".
    public var addresses: [String]
    /// Routes through the interface, in the order the host listed them.
    public var routes: [Route]

    public struct Route: Codable, Equatable, Sendable {
        /// "default" or a prefix, "10.0.0.0/8".
        public var destination: String
        /// The next hop; nil for a route on the link.
        public var gateway: String?
        public init(destination: String, gateway: String? = nil) {
            self.destination = destination
            self.gateway = gateway
        }
    }

    public init(mac: String, mtu: Int, addresses: [String], routes: [Route]) {
        self.mac = mac
        self.mtu = mtu
        self.addresses = addresses
        self.routes = routes
    }

    /// The guest's name for the interface.
    public static let guestInterface = "eth0"
}
