#if canImport(Glibc)
import Glibc
#endif
import CKVM

/// The KVM system level: the `/dev/kvm` descriptor.
/// Knows nothing of guest memory layout or devices (rust-vmm's `Kvm`).
public final class KVMSystem: Sendable {
    public static let expectedAPIVersion: Int32 = 12
    public let path: String
    let fd: OwnedDescriptor

    /// Opens `/dev/kvm` and checks the API version (`KVM_GET_API_VERSION`).
    public init(path: String = "/dev/kvm") throws(SystemCallError) {
        self.path = path
        fd = try OwnedDescriptor.open(path, flags: O_RDWR)
        let version = try check("KVM_GET_API_VERSION", path) { ckvm_ioctl_value(fd.rawValue, CKVM_GET_API_VERSION, 0) }
        guard version == Self.expectedAPIVersion else {
            throw SystemCallError(call: "KVM_GET_API_VERSION", argument: "\(path) returned \(version), want 12", errno: .notSupported)
        }
    }

    /// Why `/dev/kvm` cannot be used here, or nil when it can (for tests that need it).
    public static func unavailableReason(path: String = "/dev/kvm") -> String? {
        if access(path, R_OK | W_OK) == 0 { return nil }
        return "this needs read-write \(path) (root on a KVM host): \(String(cString: strerror(errno)))"
    }

    /// Wraps `KVM_CHECK_EXTENSION`: 0 when absent, else a capability-specific value.
    public func checkExtension(_ capability: Int32) -> Int32 {
        max(0, ckvm_ioctl_value(fd.rawValue, CKVM_CHECK_EXTENSION, UInt(capability)))
    }

    /// Wraps `KVM_GET_VCPU_MMAP_SIZE`: the size of each vCPU's `kvm_run` mapping.
    public func vcpuMappingSize() throws(SystemCallError) -> Int {
        Int(try check("KVM_GET_VCPU_MMAP_SIZE", path) { ckvm_ioctl_value(fd.rawValue, CKVM_GET_VCPU_MMAP_SIZE, 0) })
    }

    /// Wraps `KVM_GET_SUPPORTED_CPUID`.
    public func supportedCPUID() throws(SystemCallError) -> [kvm_cpuid_entry2] {
        try KVMListCall<kvm_cpuid2, kvm_cpuid_entry2>(name: "KVM_GET_SUPPORTED_CPUID", argument: path, request: CKVM_GET_SUPPORTED_CPUID,
                                                      count: \.nent, initialCapacity: 128, maximum: 4096)(fd.rawValue)
    }

    /// Wraps `KVM_GET_MSR_INDEX_LIST`: the MSRs KVM saves and restores for a vCPU.
    public func msrIndexList() throws(SystemCallError) -> [UInt32] {
        try KVMListCall<kvm_msr_list, UInt32>(name: "KVM_GET_MSR_INDEX_LIST", argument: path, request: CKVM_GET_MSR_INDEX_LIST,
                                              count: \.nmsrs, initialCapacity: 64, maximum: 16384)(fd.rawValue)
    }

    /// Wraps `KVM_CREATE_VM` (machine type 0).
    public func createVM() throws(SystemCallError) -> KVMVirtualMachine {
        let vmFD = try check("KVM_CREATE_VM", path) { ckvm_ioctl_value(fd.rawValue, CKVM_CREATE_VM, 0) }
        return KVMVirtualMachine(descriptor: OwnedDescriptor(adopting: vmFD), system: self)
    }
}
