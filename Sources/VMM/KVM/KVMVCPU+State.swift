#if canImport(Glibc)
import Glibc
#endif
import CKVM

/// The vCPU state ioctls a snapshot needs beyond what booting uses.
extension KVMVCPU {
    /// Wraps `KVM_GET_FPU`.
    public func fpu() throws(SystemCallError) -> kvm_fpu { try get("KVM_GET_FPU", CKVM_GET_FPU, kvm_fpu()) }
    /// Wraps `KVM_GET_MP_STATE` / `KVM_SET_MP_STATE`.
    public func mpState() throws(SystemCallError) -> kvm_mp_state { try get("KVM_GET_MP_STATE", CKVM_GET_MP_STATE, kvm_mp_state()) }
    public func setMPState(_ state: kvm_mp_state) throws(SystemCallError) { try set("KVM_SET_MP_STATE", CKVM_SET_MP_STATE, state) }
    /// Wraps `KVM_GET_XCRS` / `KVM_SET_XCRS` (with `KVM_CAP_XCRS`).
    public func extendedControlRegisters() throws(SystemCallError) -> kvm_xcrs { try get("KVM_GET_XCRS", CKVM_GET_XCRS, kvm_xcrs()) }
    public func setExtendedControlRegisters(_ xcrs: kvm_xcrs) throws(SystemCallError) { try set("KVM_SET_XCRS", CKVM_SET_XCRS, xcrs) }
    /// Wraps `KVM_GET_DEBUGREGS` / `KVM_SET_DEBUGREGS`.
    public func debugRegisters() throws(SystemCallError) -> kvm_debugregs { try get("KVM_GET_DEBUGREGS", CKVM_GET_DEBUGREGS, kvm_debugregs()) }
    public func setDebugRegisters(_ regs: kvm_debugregs) throws(SystemCallError) { try set("KVM_SET_DEBUGREGS", CKVM_SET_DEBUGREGS, regs) }

    /// Wraps `KVM_GET_XSAVE` (`size` == 4096) or `KVM_GET_XSAVE2` (`size` from
    /// `KVM_CHECK_EXTENSION(KVM_CAP_XSAVE2)`, larger when AMX state exists).
    public func xsave(size: Int) throws(SystemCallError) -> [UInt8] {
        let legacy = MemoryLayout<kvm_xsave>.size
        let byteCount = max(size, legacy)
        let (name, request) = byteCount > legacy ? ("KVM_GET_XSAVE2", CKVM_GET_XSAVE2) : ("KVM_GET_XSAVE", CKVM_GET_XSAVE)
        let raw = UnsafeMutableRawPointer.allocate(byteCount: byteCount, alignment: 8)
        defer { raw.deallocate() }
        raw.initializeMemory(as: UInt8.self, repeating: 0, count: byteCount)
        try check(name, "\(label), \(byteCount) bytes") { ckvm_ioctl_pointer(fd.rawValue, request, raw) }
        return Array(UnsafeRawBufferPointer(start: raw, count: byteCount))
    }

    /// Wraps `KVM_SET_XSAVE`: takes what `xsave(size:)` returned (at least 4096 bytes).
    public func setXSAVE(_ area: [UInt8]) throws(SystemCallError) {
        guard area.count >= MemoryLayout<kvm_xsave>.size else {
            throw SystemCallError(call: "KVM_SET_XSAVE", argument: "\(label): \(area.count)-byte area", errno: .invalidArgument)
        }
        let raw = UnsafeMutableRawPointer.allocate(byteCount: area.count, alignment: 8)
        defer { raw.deallocate() }
        area.withUnsafeBytes { raw.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        try check("KVM_SET_XSAVE", "\(label), \(area.count) bytes") { ckvm_ioctl_pointer(fd.rawValue, CKVM_SET_XSAVE, raw) }
    }

    /// Wraps `KVM_GET_MSRS`: reads `indices` in order and returns the values KVM
    /// read, which stop at the first MSR it refuses (the prefix, possibly empty).
    public func msrs(_ indices: [UInt32]) throws(SystemCallError) -> [(index: UInt32, value: UInt64)] {
        guard !indices.isEmpty else { return [] }
        let size = ckvm_msrs_size(UInt32(indices.count))
        let raw = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 8)
        defer { raw.deallocate() }
        raw.initializeMemory(as: UInt8.self, repeating: 0, count: size)
        raw.assumingMemoryBound(to: kvm_msrs.self).pointee.nmsrs = UInt32(indices.count)
        let table = (raw + MemoryLayout<kvm_msrs>.size).assumingMemoryBound(to: kvm_msr_entry.self)
        for (i, index) in indices.enumerated() { table[i] = kvm_msr_entry(index: index, reserved: 0, data: 0) }
        let read = try check("KVM_GET_MSRS", "\(label), \(indices.count) MSRs") { ckvm_ioctl_pointer(fd.rawValue, CKVM_GET_MSRS, raw) }
        return (0..<min(Int(read), indices.count)).map { (table[$0].index, table[$0].data) }
    }

    /// Wraps `KVM_GET_CPUID2`: the CPUID table this vCPU was given.
    public func cpuid() throws(SystemCallError) -> [kvm_cpuid_entry2] {
        try KVMListCall<kvm_cpuid2, kvm_cpuid_entry2>(name: "KVM_GET_CPUID2", argument: label, request: CKVM_GET_CPUID2,
                                                      count: \.nent, initialCapacity: 64, maximum: 4096)(fd.rawValue)
    }

    /// Wraps `KVM_GET_TSC_KHZ`: this vCPU's TSC frequency.
    public func tscKHz() throws(SystemCallError) -> UInt32 {
        UInt32(try check("KVM_GET_TSC_KHZ", label) { ckvm_ioctl_value(fd.rawValue, CKVM_GET_TSC_KHZ, 0) })
    }

    /// Wraps `KVM_KVMCLOCK_CTRL`: tells a kvmclock guest it was paused, so its
    /// soft-lockup watchdog does not fire. False when the guest has no kvmclock
    /// set up (EINVAL): nothing to tell.
    @discardableResult
    public func notifyClockPaused() -> Bool {
        ckvm_ioctl_value(fd.rawValue, CKVM_KVMCLOCK_CTRL, 0) == 0
    }

    /// Finishes the port or MMIO access of the last exit without running guest code
    /// (`immediate_exit` + `KVM_RUN`). KVM completes an exit's instruction only on the
    /// next `KVM_RUN` (an OUT's RIP moves past it then): state read before this would
    /// replay the access on restore. See "KVM_RUN" in the KVM API documentation.
    public func completePendingOperation() throws(SystemCallError) {
        requestImmediateExit(true)
        defer { requestImmediateExit(false) }
        let exit = try runOnce()
        guard exit == .interrupted else {
            throw SystemCallError(call: "KVM_RUN", argument: "\(label) with immediate_exit returned \(exit)", errno: .invalidArgument)
        }
    }
}
