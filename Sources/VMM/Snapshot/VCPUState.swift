#if canImport(Glibc)
import Glibc
#endif
import CKVM

/// The complete KVM state of one x86 vCPU: what `KVM_RUN` needs to continue exactly
/// where the snapshot stopped, in a VM that never ran this guest.
public struct VCPUState: Sendable {
    /// The FPU/SSE/AVX state: the XSAVE area where KVM has `KVM_CAP_XSAVE`, else
    /// the legacy `kvm_fpu` (x87 and SSE only).
    public enum FPU: Sendable {
        case xsave([UInt8])
        case legacy(kvm_fpu)
    }

    public struct MSR: Sendable, Equatable {
        public var index: UInt32
        public var value: UInt64
    }

    public var mpState: kvm_mp_state
    public var regs: kvm_regs
    public var sregs: kvm_sregs
    public var fpu: FPU
    /// nil where KVM lacks `KVM_CAP_XCRS`.
    public var xcrs: kvm_xcrs?
    public var debugRegs: kvm_debugregs
    public var lapic: kvm_lapic_state
    public var msrs: [MSR]
    public var events: kvm_vcpu_events
    public var cpuid: [kvm_cpuid_entry2]
    /// The TSC frequency the guest calibrated against; 0 when KVM could not say.
    public var tscKHz: UInt32

    static let msrTSC: UInt32 = 0x10
    static let msrTSCDeadline: UInt32 = 0x6e0
    /// KVM refuses more than this many MSRs per `KVM_GET_MSRS` / `KVM_SET_MSRS` (MAX_IO_MSRS is 256).
    static let msrBatch = 255

    /// The guest's TSC at capture, if KVM saves it (it does: MSR 0x10 is always listed).
    public var tsc: UInt64? { msrs.first { $0.index == Self.msrTSC }?.value }

    /// Captures `vcpu`'s state. Call it on the vCPU's thread while no `KVM_RUN` is
    /// in progress; it first completes the last exit's I/O (`completePendingOperation`),
    /// without which the restored guest would repeat that port or MMIO access.
    ///
    /// Order (Firecracker's and QEMU's): MP state first, as `KVM_GET_MP_STATE`
    /// accepts pending APIC events (INIT/SIPI) and so changes LAPIC and vCPU state;
    /// vCPU events last, as the other GETs can still move pending events.
    /// `msrIndices` defaults to `KVM_GET_MSR_INDEX_LIST`; pass it when capturing
    /// several vCPUs to ask KVM once.
    public static func capture(_ vcpu: KVMVCPU, system: KVMSystem, msrIndices: [UInt32]? = nil) throws(SystemCallError) -> VCPUState {
        try vcpu.completePendingOperation()
        let indices: [UInt32]
        if let msrIndices { indices = msrIndices } else { indices = try system.msrIndexList() }
        let mpState = try vcpu.mpState()
        let regs = try vcpu.registers()
        let sregs = try vcpu.specialRegisters()
        let fpu: FPU
        if system.checkExtension(KVM_CAP_XSAVE) > 0 {
            // KVM_CAP_XSAVE2 reports the area's size where it exceeds 4096 bytes (AMX).
            fpu = .xsave(try vcpu.xsave(size: Int(system.checkExtension(KVM_CAP_XSAVE2))))
        } else {
            fpu = .legacy(try vcpu.fpu())
        }
        let xcrs = system.checkExtension(KVM_CAP_XCRS) > 0 ? try vcpu.extendedControlRegisters() : nil
        let debugRegs = try vcpu.debugRegisters()
        let lapic = try vcpu.localAPIC()
        // KVM_GET_TSC_KHZ exists with KVM_CAP_GET_TSC_KHZ; without it the frequency is unknown (0).
        let tscKHz = system.checkExtension(KVM_CAP_GET_TSC_KHZ) > 0 ? (try? vcpu.tscKHz()) ?? 0 : 0
        let cpuid = try vcpu.cpuid()
        let msrs = try readableMSRs(vcpu, indices)
        let events = try vcpu.events()
        return VCPUState(mpState: mpState, regs: regs, sregs: sregs, fpu: fpu, xcrs: xcrs, debugRegs: debugRegs,
                         lapic: lapic, msrs: msrs, events: events, cpuid: cpuid, tscKHz: tscKHz)
    }

    /// Reads every MSR of `indices` that `KVM_GET_MSRS` returns: the index list names
    /// MSRs KVM may still refuse for this vCPU's CPUID (it stops at the first one),
    /// so each refused MSR is dropped and the rest read again.
    static func readableMSRs(_ vcpu: KVMVCPU, _ indices: [UInt32]) throws(SystemCallError) -> [MSR] {
        var result: [MSR] = []
        var remaining = indices[...]
        while !remaining.isEmpty {
            let batch = Array(remaining.prefix(msrBatch))
            let read = try vcpu.msrs(batch)
            result += read.map { MSR(index: $0.index, value: $0.value) }
            remaining = remaining.dropFirst(read.count)
            if read.count < batch.count { remaining = remaining.dropFirst() }   // the refused one
        }
        return result
    }

    /// The MSRs in restore order: the TSC first (it sets the vCPU's TSC offset,
    /// which the deadline and kvmclock MSRs are relative to), the TSC deadline
    /// last (KVM arms the LAPIC timer from it, against the restored TSC and LAPIC).
    /// `tsc` replaces the saved TSC value (see `restore`).
    func msrsInRestoreOrder(tsc: UInt64?) -> [MSR] {
        var first: [MSR] = [], middle: [MSR] = [], last: [MSR] = []
        for msr in msrs {
            switch msr.index {
            case Self.msrTSC: first.append(MSR(index: msr.index, value: tsc ?? msr.value))
            case Self.msrTSCDeadline: last.append(msr)
            default: middle.append(msr)
            }
        }
        return first + middle + last
    }

    /// Writes this state into `vcpu`, a vCPU of a VM whose in-kernel irqchip exists
    /// (and, for the LAPIC timer, whose machine state is restored first).
    ///
    /// Order (Firecracker's restore_state, which follows QEMU): CPUID first, as
    /// SREGS (CR4.OSXSAVE), XSAVE and the MSRs are checked against it; MP state;
    /// REGS before SREGS and both before VCPU_EVENTS (SET_REGS clears a pending
    /// exception, which VCPU_EVENTS then restores); XSAVE after SREGS, XCRS after
    /// XSAVE; the LAPIC after SREGS (SREGS carries the APIC base); MSRs after the
    /// LAPIC (the TSC deadline MSR needs the LAPIC configured); VCPU_EVENTS last.
    ///
    /// TSC: the guest's TSC continues from `tsc` (default: the saved value), so the
    /// time the snapshot sat on disk never happened for the guest, matching kvmclock
    /// (`MachineState.restore`). Pass the boot vCPU's TSC for every vCPU: KVM treats
    /// host writes of one value within a second as a synchronized TSC and gives all
    /// vCPUs the same offset.
    public func restore(to vcpu: KVMVCPU, system: KVMSystem, tsc: UInt64? = nil) throws(SnapshotError) {
        do {
            try vcpu.setCPUID(cpuid)
            try vcpu.setMPState(mpState)
            try vcpu.setRegisters(regs)
            try vcpu.setSpecialRegisters(sregs)
            switch fpu {
            case .xsave(let area):
                guard system.checkExtension(KVM_CAP_XSAVE) > 0 else {
                    throw SnapshotError.unsupported("the snapshot holds an XSAVE area and this KVM lacks KVM_CAP_XSAVE")
                }
                try vcpu.setXSAVE(area)
            case .legacy(let state):
                try vcpu.setFPU(state)
            }
            if let xcrs {
                guard system.checkExtension(KVM_CAP_XCRS) > 0 else {
                    throw SnapshotError.unsupported("the snapshot holds XCRs and this KVM lacks KVM_CAP_XCRS")
                }
                try vcpu.setExtendedControlRegisters(xcrs)
            }
            try vcpu.setDebugRegisters(debugRegs)
            try vcpu.setLocalAPIC(lapic)
            let ordered = msrsInRestoreOrder(tsc: tsc)
            var start = 0
            while start < ordered.count {
                let batch = ordered[start..<min(start + Self.msrBatch, ordered.count)]
                try vcpu.setMSRs(batch.map { ($0.index, $0.value) })
                start += batch.count
            }
            // KVM_GET_VCPU_EVENTS reports a pending NMI and the SIPI vector but does not
            // flag them valid; without these flags SET would drop them.
            var events = self.events
            events.flags |= UInt32(KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SIPI_VECTOR)
            try vcpu.setEvents(events)
        } catch let error as SnapshotError {
            throw error
        } catch let error as SystemCallError {
            throw .io(error)
        } catch {
            throw .invalidArgument("\(error)")
        }
        // A kvmclock guest learns it was paused (no soft-lockup report); a guest
        // without kvmclock makes this fail, which is fine.
        vcpu.notifyClockPaused()
    }
}

extension VCPUState {
    static let maximumXSAVEBytes = 1 << 16
    static let maximumMSRs = 4096
    static let maximumCPUIDEntries = 1024

    func encode(into writer: inout SnapshotWriter) {
        writer.raw(mpState)
        writer.raw(regs)
        writer.raw(sregs)
        switch fpu {
        case .xsave(let area):
            writer.u8(1)
            writer.blob(area)
        case .legacy(let state):
            writer.u8(0)
            writer.raw(state)
        }
        writer.optionalRaw(xcrs)
        writer.raw(debugRegs)
        writer.raw(lapic)
        writer.u32(UInt32(msrs.count))
        for msr in msrs {
            writer.u32(msr.index)
            writer.u64(msr.value)
        }
        writer.raw(events)
        writer.u32(UInt32(cpuid.count))
        for entry in cpuid { writer.raw(entry) }
        writer.u32(tscKHz)
    }

    static func decode(from reader: inout SnapshotReader) throws(SnapshotError) -> VCPUState {
        let mpState = try reader.raw(kvm_mp_state.self, "kvm_mp_state")
        let regs = try reader.raw(kvm_regs.self, "kvm_regs")
        let sregs = try reader.raw(kvm_sregs.self, "kvm_sregs")
        let fpu: FPU
        switch try reader.u8() {
        case 0: fpu = .legacy(try reader.raw(kvm_fpu.self, "kvm_fpu"))
        case 1:
            let area = try reader.blob(maximum: maximumXSAVEBytes, of: "XSAVE area")
            guard area.count >= MemoryLayout<kvm_xsave>.size else { throw .malformed("\(reader.what): XSAVE area of \(area.count) bytes") }
            fpu = .xsave(area)
        case let kind: throw .malformed("\(reader.what): FPU kind \(kind)")
        }
        let xcrs = try reader.optionalRaw(kvm_xcrs.self, "kvm_xcrs")
        let debugRegs = try reader.raw(kvm_debugregs.self, "kvm_debugregs")
        let lapic = try reader.raw(kvm_lapic_state.self, "kvm_lapic_state")
        var msrs: [MSR] = []
        for _ in 0..<(try reader.count(maximum: maximumMSRs, of: "MSRs")) {
            msrs.append(MSR(index: try reader.u32(), value: try reader.u64()))
        }
        let events = try reader.raw(kvm_vcpu_events.self, "kvm_vcpu_events")
        var cpuid: [kvm_cpuid_entry2] = []
        for _ in 0..<(try reader.count(maximum: maximumCPUIDEntries, of: "CPUID entries")) {
            cpuid.append(try reader.raw(kvm_cpuid_entry2.self, "kvm_cpuid_entry2"))
        }
        let tscKHz = try reader.u32()
        return VCPUState(mpState: mpState, regs: regs, sregs: sregs, fpu: fpu, xcrs: xcrs, debugRegs: debugRegs,
                         lapic: lapic, msrs: msrs, events: events, cpuid: cpuid, tscKHz: tscKHz)
    }
}
