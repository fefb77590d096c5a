#if canImport(Glibc)
import Glibc
#endif
import CKVM

/// Why `KVM_RUN` returned, decoded from `kvm_run`. Values only: no pointer into
/// the mapping escapes; reads are completed with `completeRead`.
public enum VCPUExit: Sendable, Equatable {
    /// Port I/O. `value` holds the written bytes (little-endian) when `count == 1`;
    /// string I/O (`rep outs`) carries its bytes in `bytes`.
    case io(port: UInt16, size: Int, count: Int, isWrite: Bool, value: UInt64, bytes: [UInt8])
    /// Memory-mapped I/O outside guest RAM.
    case mmio(address: UInt64, length: Int, isWrite: Bool, value: UInt64)
    case halt
    /// Triple fault or reset: with `reboot=t` a guest restart or panic ends here.
    case shutdown
    case systemEvent(type: UInt32)
    /// KVM could not run or emulate an instruction.
    case internalError(InternalError)
    case failEntry(hardwareReason: UInt64)
    /// `KVM_RUN` returned EINTR: the vCPU was kicked (signal or immediate_exit).
    case interrupted
    case other(reason: UInt32)

    public struct InternalError: Sendable, Equatable, CustomStringConvertible {
        public let suberror: UInt32
        /// Instruction bytes, when KVM reported them (emulation failure).
        public let instruction: [UInt8]
        public let data: [UInt64]

        public var isEmulationFailure: Bool { suberror == UInt32(KVM_INTERNAL_ERROR_EMULATION) }

        public var description: String {
            let name: String
            switch Int32(suberror) {
            case KVM_INTERNAL_ERROR_EMULATION: name = "emulation failure"
            case KVM_INTERNAL_ERROR_SIMUL_EX: name = "simultaneous exceptions"
            case KVM_INTERNAL_ERROR_DELIVERY_EV: name = "event delivery failed"
            case KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON: name = "unexpected exit reason"
            default: name = "suberror \(suberror)"
            }
            var text = "KVM_EXIT_INTERNAL_ERROR (\(name))"
            if !instruction.isEmpty {
                text += ", instruction bytes " + instruction.map { hex2($0) }.joined(separator: " ")
            }
            if !data.isEmpty {
                text += ", data [" + data.map { "0x" + String($0, radix: 16) }.joined(separator: ", ") + "]"
            }
            return text
        }
    }
}

@inline(__always) func hex2(_ byte: UInt8) -> String {
    byte < 16 ? "0" + String(byte, radix: 16) : String(byte, radix: 16)
}

/// The KVM vCPU level: registers and `KVM_RUN`. Used by exactly one thread, except
/// `requestImmediateExit`, which other threads call to kick it.
public final class KVMVCPU: @unchecked Sendable {
    public let index: UInt32
    let fd: OwnedDescriptor
    private let run: UnsafeMutableRawPointer
    private let runSize: Int

    init(index: UInt32, descriptor: OwnedDescriptor, run: UnsafeMutableRawPointer, runSize: Int) {
        self.index = index
        self.fd = descriptor
        self.run = run
        self.runSize = runSize
    }

    deinit { munmap(run, runSize) }

    var label: String { "vCPU \(index)" }

    func get<T: BitwiseCopyable>(_ name: String, _ request: UInt, _ value: T) throws(SystemCallError) -> T {
        var value = value
        try check(name, label) { ckvm_ioctl_pointer(fd.rawValue, request, &value) }
        return value
    }

    func set<T: BitwiseCopyable>(_ name: String, _ request: UInt, _ value: T) throws(SystemCallError) {
        var value = value
        try check(name, label) { ckvm_ioctl_pointer(fd.rawValue, request, &value) }
    }

    /// Wraps `KVM_GET_REGS` / `KVM_SET_REGS`.
    public func registers() throws(SystemCallError) -> kvm_regs { try get("KVM_GET_REGS", CKVM_GET_REGS, kvm_regs()) }
    public func setRegisters(_ regs: kvm_regs) throws(SystemCallError) { try set("KVM_SET_REGS", CKVM_SET_REGS, regs) }
    /// Wraps `KVM_GET_SREGS` / `KVM_SET_SREGS`.
    public func specialRegisters() throws(SystemCallError) -> kvm_sregs { try get("KVM_GET_SREGS", CKVM_GET_SREGS, kvm_sregs()) }
    public func setSpecialRegisters(_ sregs: kvm_sregs) throws(SystemCallError) { try set("KVM_SET_SREGS", CKVM_SET_SREGS, sregs) }
    /// Wraps `KVM_SET_FPU`.
    public func setFPU(_ fpu: kvm_fpu) throws(SystemCallError) { try set("KVM_SET_FPU", CKVM_SET_FPU, fpu) }
    /// Wraps `KVM_GET_LAPIC` / `KVM_SET_LAPIC`.
    public func localAPIC() throws(SystemCallError) -> kvm_lapic_state { try get("KVM_GET_LAPIC", CKVM_GET_LAPIC, kvm_lapic_state()) }
    public func setLocalAPIC(_ state: kvm_lapic_state) throws(SystemCallError) { try set("KVM_SET_LAPIC", CKVM_SET_LAPIC, state) }
    /// Wraps `KVM_GET_VCPU_EVENTS` / `KVM_SET_VCPU_EVENTS`.
    public func events() throws(SystemCallError) -> kvm_vcpu_events { try get("KVM_GET_VCPU_EVENTS", CKVM_GET_VCPU_EVENTS, kvm_vcpu_events()) }
    public func setEvents(_ events: kvm_vcpu_events) throws(SystemCallError) { try set("KVM_SET_VCPU_EVENTS", CKVM_SET_VCPU_EVENTS, events) }

    /// Wraps `KVM_SET_CPUID2`.
    public func setCPUID(_ entries: [kvm_cpuid_entry2]) throws(SystemCallError) {
        let size = ckvm_cpuid2_size(UInt32(entries.count))
        let raw = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 8)
        defer { raw.deallocate() }
        raw.initializeMemory(as: UInt8.self, repeating: 0, count: size)
        raw.assumingMemoryBound(to: kvm_cpuid2.self).pointee.nent = UInt32(entries.count)
        let table = (raw + MemoryLayout<kvm_cpuid2>.size).assumingMemoryBound(to: kvm_cpuid_entry2.self)
        for (i, entry) in entries.enumerated() { table[i] = entry }
        try check("KVM_SET_CPUID2", "\(label), \(entries.count) entries") { ckvm_ioctl_pointer(fd.rawValue, CKVM_SET_CPUID2, raw) }
    }

    /// Wraps `KVM_SET_MSRS`; every MSR must be accepted.
    public func setMSRs(_ msrs: [(index: UInt32, value: UInt64)]) throws(SystemCallError) {
        let size = ckvm_msrs_size(UInt32(msrs.count))
        let raw = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 8)
        defer { raw.deallocate() }
        raw.initializeMemory(as: UInt8.self, repeating: 0, count: size)
        raw.assumingMemoryBound(to: kvm_msrs.self).pointee.nmsrs = UInt32(msrs.count)
        let table = (raw + MemoryLayout<kvm_msrs>.size).assumingMemoryBound(to: kvm_msr_entry.self)
        for (i, msr) in msrs.enumerated() {
            table[i] = kvm_msr_entry(index: msr.index, reserved: 0, data: msr.value)
        }
        let written = try check("KVM_SET_MSRS", "\(label), \(msrs.count) MSRs") { ckvm_ioctl_pointer(fd.rawValue, CKVM_SET_MSRS, raw) }
        if written != msrs.count {
            let failed = msrs[Int(written)].index
            throw SystemCallError(call: "KVM_SET_MSRS", argument: "\(label): MSR 0x\(String(failed, radix: 16)) refused", errno: .invalidArgument)
        }
    }

    /// Asks a running or about-to-run `KVM_RUN` to return (`kvm_run.immediate_exit`).
    /// Safe from any thread; pair it with a signal to the vCPU thread.
    public func requestImmediateExit(_ on: Bool = true) {
        ckvm_set_immediate_exit(run, on ? 1 : 0)
    }

    /// Wraps `KVM_RUN` and decodes the exit. EINTR is not retried: it is `.interrupted`.
    public func runOnce() throws(SystemCallError) -> VCPUExit {
        let rc = ckvm_ioctl_value(fd.rawValue, CKVM_RUN, 0)
        if rc == -1 {
            let code = errno
            if code == EINTR || code == EAGAIN { return .interrupted }
            throw SystemCallError(call: "KVM_RUN", argument: label, errno: .init(rawValue: code))
        }
        return decodeExit()
    }

    private func decodeExit() -> VCPUExit {
        let reason = ckvm_exit_reason(run)
        switch Int32(reason) {
        case KVM_EXIT_IO:
            let io = ckvm_exit_io(run)
            let isWrite = io.direction == UInt8(KVM_EXIT_IO_OUT)
            let total = Int(io.size) * Int(io.count)
            var value: UInt64 = 0
            var bytes: [UInt8] = []
            // Bounded by the mapping: KVM places the data inside the kvm_run pages.
            if isWrite, Int(io.data_offset) + total <= runSize {
                let data = UnsafeRawBufferPointer(start: run + Int(io.data_offset), count: total)
                if io.count == 1 {
                    for (i, b) in data.prefix(8).enumerated() { value |= UInt64(b) << (8 * UInt64(i)) }
                } else {
                    bytes = Array(data)
                }
            }
            return .io(port: io.port, size: Int(io.size), count: Int(io.count), isWrite: isWrite, value: value, bytes: bytes)
        case KVM_EXIT_MMIO:
            let length = Int(min(8, ckvm_exit_mmio_length(run)))
            var value: UInt64 = 0
            let data = ckvm_exit_mmio_data(run)!
            for i in 0..<length { value |= UInt64(data[i]) << (8 * UInt64(i)) }
            return .mmio(address: ckvm_exit_mmio_address(run), length: length, isWrite: ckvm_exit_mmio_is_write(run) != 0, value: value)
        case KVM_EXIT_HLT:
            return .halt
        case KVM_EXIT_SHUTDOWN:
            return .shutdown
        case KVM_EXIT_SYSTEM_EVENT:
            return .systemEvent(type: ckvm_exit_system_event_type(run))
        case KVM_EXIT_FAIL_ENTRY:
            return .failEntry(hardwareReason: ckvm_exit_fail_entry_reason(run))
        case KVM_EXIT_INTR:
            return .interrupted
        case KVM_EXIT_INTERNAL_ERROR:
            let suberror = ckvm_exit_internal_suberror(run)
            var instruction: [UInt8] = []
            var data: [UInt64] = []
            if suberror == UInt32(KVM_INTERNAL_ERROR_EMULATION),
               ckvm_exit_emulation_flags(run) & UInt64(KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES) != 0 {
                let size = min(15, Int(ckvm_exit_emulation_insn_size(run)))
                instruction = (0..<size).map { ckvm_exit_emulation_insn_byte(run, UInt32($0)) }
            } else {
                let count = min(16, ckvm_exit_internal_ndata(run))
                data = (0..<count).map { ckvm_exit_internal_data(run, $0) }
            }
            return .internalError(.init(suberror: suberror, instruction: instruction, data: data))
        default:
            return .other(reason: reason)
        }
    }

    /// Supplies the value of a port read before the next `KVM_RUN`.
    public func completeIORead(_ value: UInt64) {
        let io = ckvm_exit_io(run)
        let total = Int(io.size) * Int(io.count)
        guard io.direction == UInt8(KVM_EXIT_IO_IN), Int(io.data_offset) + total <= runSize else { return }
        let data = run + Int(io.data_offset)
        for i in 0..<total {
            data.storeBytes(of: UInt8(truncatingIfNeeded: value >> (8 * UInt64(i % 8))), toByteOffset: i, as: UInt8.self)
        }
    }

    /// Supplies the value of an MMIO read before the next `KVM_RUN`.
    public func completeMMIORead(_ value: UInt64) {
        let data = ckvm_exit_mmio_data(run)!
        let length = Int(min(8, ckvm_exit_mmio_length(run)))
        for i in 0..<length { data[i] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(i))) }
    }
}
