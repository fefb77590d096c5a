#if canImport(Glibc)
import Glibc
#endif
import CKVM

/// The KVM VM level: memory slots, the in-kernel irqchip, irqfd / ioeventfd.
public final class KVMVirtualMachine: Sendable {
    let fd: OwnedDescriptor
    public let system: KVMSystem

    init(descriptor: OwnedDescriptor, system: KVMSystem) {
        self.fd = descriptor
        self.system = system
    }

    /// Wraps `KVM_SET_USER_MEMORY_REGION`.
    public func setUserMemoryRegion(slot: UInt32, guestAddress: UInt64, size: UInt64, hostAddress: UnsafeMutableRawPointer) throws(SystemCallError) {
        var region = kvm_userspace_memory_region(
            slot: slot, flags: 0, guest_phys_addr: guestAddress, memory_size: size,
            userspace_addr: UInt64(UInt(bitPattern: hostAddress)))
        try check("KVM_SET_USER_MEMORY_REGION", "slot \(slot) at 0x\(String(guestAddress, radix: 16)) size 0x\(String(size, radix: 16))") {
            ckvm_ioctl_pointer(fd.rawValue, CKVM_SET_USER_MEMORY_REGION, &region)
        }
    }

    /// Wraps `KVM_SET_TSS_ADDR` (three pages Intel VMX needs below 4 GiB).
    public func setTSSAddress(_ address: UInt64) throws(SystemCallError) {
        try check("KVM_SET_TSS_ADDR", "0x\(String(address, radix: 16))") { ckvm_ioctl_value(fd.rawValue, CKVM_SET_TSS_ADDR, UInt(address)) }
    }

    /// Wraps `KVM_SET_IDENTITY_MAP_ADDR`.
    public func setIdentityMapAddress(_ address: UInt64) throws(SystemCallError) {
        var value = address
        try check("KVM_SET_IDENTITY_MAP_ADDR", "0x\(String(address, radix: 16))") { ckvm_ioctl_pointer(fd.rawValue, CKVM_SET_IDENTITY_MAP_ADDR, &value) }
    }

    /// Wraps `KVM_CREATE_IRQCHIP`: in-kernel PIC, IOAPIC and local APICs.
    public func createIRQChip() throws(SystemCallError) {
        try check("KVM_CREATE_IRQCHIP") { ckvm_ioctl_value(fd.rawValue, CKVM_CREATE_IRQCHIP, 0) }
    }

    /// Wraps `KVM_CREATE_PIT2` with the speaker port left to user space (dummy).
    public func createPIT() throws(SystemCallError) {
        var config = kvm_pit_config()
        config.flags = UInt32(KVM_PIT_SPEAKER_DUMMY)
        try check("KVM_CREATE_PIT2") { ckvm_ioctl_pointer(fd.rawValue, CKVM_CREATE_PIT2, &config) }
    }

    /// Wraps `KVM_IRQ_LINE`.
    public func setIRQLine(_ gsi: UInt32, level: Bool) throws(SystemCallError) {
        var line = kvm_irq_level()
        line.irq = gsi
        line.level = level ? 1 : 0
        try check("KVM_IRQ_LINE", "gsi \(gsi)") { ckvm_ioctl_pointer(fd.rawValue, CKVM_IRQ_LINE, &line) }
    }

    /// Wraps `KVM_IRQFD`: writing `event` raises (edge) `gsi` without a VM exit.
    public func registerIRQFD(_ event: OwnedDescriptor, gsi: UInt32) throws(SystemCallError) {
        var request = kvm_irqfd()
        request.fd = UInt32(event.rawValue)
        request.gsi = gsi
        try check("KVM_IRQFD", "gsi \(gsi)") { ckvm_ioctl_pointer(fd.rawValue, CKVM_IRQFD, &request) }
    }

    /// Wraps `KVM_IOEVENTFD`: a guest write of `value` (4 bytes) at `address`
    /// signals `event` instead of exiting to user space.
    public func registerIOEventFD(_ event: OwnedDescriptor, mmioAddress address: UInt64, value: UInt32) throws(SystemCallError) {
        var request = kvm_ioeventfd()
        request.addr = address
        request.len = 4
        request.fd = event.rawValue
        request.datamatch = UInt64(value)
        request.flags = CKVM_IOEVENTFD_FLAG_DATAMATCH
        try check("KVM_IOEVENTFD", "0x\(String(address, radix: 16)) = \(value)") { ckvm_ioctl_pointer(fd.rawValue, CKVM_IOEVENTFD, &request) }
    }

    /// Wraps `KVM_CREATE_VCPU` and maps its `kvm_run` structure.
    public func createVCPU(index: UInt32) throws(SystemCallError) -> KVMVCPU {
        let vcpuFD = OwnedDescriptor(adopting: try check("KVM_CREATE_VCPU", "\(index)") {
            ckvm_ioctl_value(fd.rawValue, CKVM_CREATE_VCPU, UInt(index))
        })
        let size = try system.vcpuMappingSize()
        guard let mapping = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpuFD.rawValue, 0), mapping != MAP_FAILED else {
            throw SystemCallError(call: "mmap", argument: "kvm_run of vCPU \(index)", errno: .init(rawValue: errno))
        }
        return KVMVCPU(index: index, descriptor: vcpuFD, run: mapping, runSize: size)
    }
}
