#if canImport(Glibc)
import Glibc
#endif
import CKVM

/// The VM-wide KVM state: the in-kernel PICs and IOAPIC, the PIT (when the VM has
/// one) and kvmclock.
public struct MachineState: Sendable {
    /// Raw `struct kvm_irqchip` of each chip (its union does not import as plain data).
    public var picMaster: [UInt8]
    public var picSlave: [UInt8]
    public var ioapic: [UInt8]
    /// nil when the VM was made without an in-kernel PIT (`createPIT`).
    public var pit: kvm_pit_state2?
    public var clock: kvm_clock_data

    /// Captures `vm`'s state; its vCPUs must be stopped (out of `KVM_RUN`).
    public static func capture(_ vm: KVMVirtualMachine) throws(SystemCallError) -> MachineState {
        MachineState(
            picMaster: try vm.irqChip(UInt32(KVM_IRQCHIP_PIC_MASTER)),
            picSlave: try vm.irqChip(UInt32(KVM_IRQCHIP_PIC_SLAVE)),
            ioapic: try vm.irqChip(UInt32(KVM_IRQCHIP_IOAPIC)),
            pit: try vm.pitState(),
            clock: try vm.clock())
    }

    /// The clock to give `KVM_SET_CLOCK`: the guest's kvmclock continues from the
    /// snapshot's value, so a restored guest's uptime carries on from the snapshot's
    /// (proof it was not booted) and the time the file sat on disk never happened.
    ///
    /// Flags: `KVM_GET_CLOCK` reports `KVM_CLOCK_TSC_STABLE` when KVM's master clock
    /// (one TSC-based clock shared by all vCPUs) is in use; it describes the host at
    /// capture and means nothing as input, so it is cleared. `KVM_CLOCK_REALTIME`
    /// (and `realtime`) would make KVM advance the clock by the wall time elapsed
    /// since capture, which a snapshot restored minutes or days later must not do:
    /// cleared too. The guest's wall clock is re-set by the agent after restore.
    var clockToRestore: kvm_clock_data {
        var data = kvm_clock_data()
        data.clock = clock.clock
        data.flags = 0
        return data
    }

    /// Writes this state into `vm`, which has an in-kernel irqchip (and a PIT when
    /// the snapshot has one). Call it before restoring the vCPUs (`VCPUState.restore`):
    /// Firecracker's order, PIT, clock, then PICs and IOAPIC.
    public func restore(to vm: KVMVirtualMachine) throws(SnapshotError) {
        do {
            if let pit {
                try vm.setPITState(pit)
            }
            try vm.setClock(clockToRestore)
            try vm.setIRQChip(picMaster)
            try vm.setIRQChip(picSlave)
            try vm.setIRQChip(ioapic)
        } catch {
            if error.errno == .noSuchAddressOrDevice, error.call == "KVM_SET_PIT2" {
                throw .unsupported("the snapshot has PIT state and this VM was made without a PIT")
            }
            throw .io(error)
        }
    }
}

extension MachineState {
    func encode(into writer: inout SnapshotWriter) {
        writer.blob(picMaster)
        writer.blob(picSlave)
        writer.blob(ioapic)
        writer.optionalRaw(pit)
        writer.raw(clock)
    }

    static func decode(from reader: inout SnapshotReader) throws(SnapshotError) -> MachineState {
        let size = MemoryLayout<kvm_irqchip>.size
        var chips: [[UInt8]] = []
        for want in [KVM_IRQCHIP_PIC_MASTER, KVM_IRQCHIP_PIC_SLAVE, KVM_IRQCHIP_IOAPIC] {
            let chip = try reader.blob(maximum: size, of: "kvm_irqchip")
            guard chip.count == size else { throw .malformed("\(reader.what): kvm_irqchip is \(chip.count) bytes, this VMM's is \(size)") }
            let id = chip.withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) }
            guard id == UInt32(want) else { throw .malformed("\(reader.what): irqchip \(id) where \(want) belongs") }
            chips.append(chip)
        }
        let (master, slave, ioapic) = (chips[0], chips[1], chips[2])
        let pit = try reader.optionalRaw(kvm_pit_state2.self, "kvm_pit_state2")
        let clock = try reader.raw(kvm_clock_data.self, "kvm_clock_data")
        return MachineState(picMaster: master, picSlave: slave, ioapic: ioapic, pit: pit, clock: clock)
    }
}
