#if canImport(Glibc)
import Glibc
#endif
import CKVM

/// The VM-wide state ioctls a snapshot needs: irqchip, PIT, kvmclock.
extension KVMVirtualMachine {
    private func get<T: BitwiseCopyable>(_ name: String, _ argument: String, _ request: UInt, _ value: T) throws(SystemCallError) -> T {
        var value = value
        try check(name, argument) { ckvm_ioctl_pointer(fd.rawValue, request, &value) }
        return value
    }

    private func set<T: BitwiseCopyable>(_ name: String, _ argument: String, _ request: UInt, _ value: T) throws(SystemCallError) {
        var value = value
        try check(name, argument) { ckvm_ioctl_pointer(fd.rawValue, request, &value) }
    }

    /// Wraps `KVM_GET_IRQCHIP` for `chip` (`KVM_IRQCHIP_PIC_MASTER`, `_PIC_SLAVE`, `_IOAPIC`):
    /// the raw `struct kvm_irqchip` (Swift cannot treat its union as plain data).
    public func irqChip(_ chip: UInt32) throws(SystemCallError) -> [UInt8] {
        let size = MemoryLayout<kvm_irqchip>.size
        let raw = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 8)
        defer { raw.deallocate() }
        raw.initializeMemory(as: UInt8.self, repeating: 0, count: size)
        raw.storeBytes(of: chip, as: UInt32.self)   // chip_id comes first
        try check("KVM_GET_IRQCHIP", "chip \(chip)") { ckvm_ioctl_pointer(fd.rawValue, CKVM_GET_IRQCHIP, raw) }
        return Array(UnsafeRawBufferPointer(start: raw, count: size))
    }

    /// Wraps `KVM_SET_IRQCHIP` with a raw `struct kvm_irqchip` (the chip is its `chip_id`).
    public func setIRQChip(_ state: [UInt8]) throws(SystemCallError) {
        let size = MemoryLayout<kvm_irqchip>.size
        guard state.count == size else {
            throw SystemCallError(call: "KVM_SET_IRQCHIP", argument: "\(state.count) bytes, want \(size)", errno: .invalidArgument)
        }
        let raw = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 8)
        defer { raw.deallocate() }
        state.withUnsafeBytes { raw.copyMemory(from: $0.baseAddress!, byteCount: size) }
        let chip = raw.load(as: UInt32.self)
        try check("KVM_SET_IRQCHIP", "chip \(chip)") { ckvm_ioctl_pointer(fd.rawValue, CKVM_SET_IRQCHIP, raw) }
    }

    /// Wraps `KVM_GET_PIT2`; nil when this VM has no in-kernel PIT (ENXIO).
    public func pitState() throws(SystemCallError) -> kvm_pit_state2? {
        var state = kvm_pit_state2()
        if ckvm_ioctl_pointer(fd.rawValue, CKVM_GET_PIT2, &state) == 0 { return state }
        if errno == ENXIO { return nil }
        throw SystemCallError(call: "KVM_GET_PIT2", argument: "", errno: .init(rawValue: errno))
    }

    /// Wraps `KVM_SET_PIT2` (ENXIO: the VM was made without `createPIT`).
    public func setPITState(_ state: kvm_pit_state2) throws(SystemCallError) {
        try set("KVM_SET_PIT2", "", CKVM_SET_PIT2, state)
    }

    /// Wraps `KVM_GET_CLOCK` / `KVM_SET_CLOCK` (kvmclock, nanoseconds).
    public func clock() throws(SystemCallError) -> kvm_clock_data { try get("KVM_GET_CLOCK", "", CKVM_GET_CLOCK, kvm_clock_data()) }
    public func setClock(_ clock: kvm_clock_data) throws(SystemCallError) {
        try set("KVM_SET_CLOCK", "clock \(clock.clock) ns, flags 0x\(String(clock.flags, radix: 16))", CKVM_SET_CLOCK, clock)
    }
}
