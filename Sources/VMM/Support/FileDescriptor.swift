#if canImport(Glibc)
import Glibc
#endif
import CKVM

/// An owned file descriptor, closed exactly once when the last reference goes.
/// Immutable after creation, so it may be shared between the vCPU and event-loop
/// threads; the raw value never outlives this object in a long-lived type.
public final class OwnedDescriptor: Sendable {
    public let rawValue: Int32

    public init(adopting rawValue: Int32) {
        precondition(rawValue >= 0, "OwnedDescriptor adopts only valid descriptors")
        self.rawValue = rawValue
    }

    /// Opens `path` with `O_CLOEXEC` added.
    public static func open(_ path: String, flags: Int32, mode: mode_t = 0) throws(SystemCallError) -> OwnedDescriptor {
        let fd = try check("open", path) { Glibc.open(path, flags | O_CLOEXEC, mode) }
        return OwnedDescriptor(adopting: fd)
    }

    /// An eventfd(2), non-blocking and close-on-exec.
    public static func eventFD(_ purpose: String) throws(SystemCallError) -> OwnedDescriptor {
        let fd = try check("eventfd", purpose) { eventfd(0, Int32(EFD_CLOEXEC | EFD_NONBLOCK)) }
        return OwnedDescriptor(adopting: fd)
    }

    deinit { Glibc.close(rawValue) }
}

extension OwnedDescriptor {
    /// Adds one to an eventfd counter.
    public func signalEvent() {
        var one: UInt64 = 1
        _ = withUnsafeBytes(of: &one) { Glibc.write(rawValue, $0.baseAddress, 8) }
    }

    /// Reads and resets an eventfd counter; 0 when it was not signalled.
    @discardableResult
    public func drainEvent() -> UInt64 {
        var value: UInt64 = 0
        let n = withUnsafeMutableBytes(of: &value) { Glibc.read(rawValue, $0.baseAddress, 8) }
        return n == 8 ? value : 0
    }

    /// Writes all of `bytes`, retrying short writes; errors other than EINTR end it.
    public func writeAll(_ bytes: UnsafeRawBufferPointer) throws(SystemCallError) {
        var offset = 0
        while offset < bytes.count {
            let n = try checkSize("write", "fd \(rawValue)") {
                Glibc.write(rawValue, bytes.baseAddress! + offset, bytes.count - offset)
            }
            offset += n
        }
    }
}
