import CKVM
import SystemPackage

/// A tap interface opened in a container's network namespace.
public enum TapDevice {
    /// Opens the existing tap `name` in the network namespace at `netnsPath`
    /// (Wraps `setns(CLONE_NEWNET)` on the calling thread, `open("/dev/net/tun")` and
    /// `TUNSETIFF` with IFF_VNET_HDR, `TUNSETVNETHDRSZ` 12 and `TUNSETOFFLOAD` for
    /// checksums and TSO, then `setns` back): frames carry the virtio-net header both
    /// ways, so the guest's offloads pass through. Needs CAP_SYS_ADMIN and CAP_NET_ADMIN: called
    /// before the VMM confines itself.
    public static func open(name: String, netnsPath: String) throws(SystemCallError) -> OwnedDescriptor {
        var step: Int32 = 0
        let fd = ckvm_open_tap(netnsPath, name, &step)
        guard fd < 0 else { return OwnedDescriptor(adopting: fd) }
        let (call, argument): (String, String) = switch step {
        case 1: ("open", "/proc/thread-self/ns/net")
        case 2: ("open", netnsPath)
        case 3: ("setns", netnsPath)
        case 4: ("open", "/dev/net/tun in \(netnsPath)")
        case 5: ("ioctl TUNSETIFF", "\(name) in \(netnsPath)")
        case 7: ("ioctl TUNSETVNETHDRSZ", name)
        case 8: ("ioctl TUNSETOFFLOAD", name)
        default: ("setns", "back to the VMM's own network namespace")
        }
        throw SystemCallError(call: call, argument: argument, errno: .init(rawValue: -fd))
    }
}
