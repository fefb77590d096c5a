import Foundation
import CKVM
@testable import VMM

enum SnapshotFixtures {
    static let identity = SnapshotIdentity(vmmVersion: "0.1.0", kernel: SHA256.hash(Array("kernel image".utf8)),
                                           agent: SHA256.hash(Array("agent image".utf8)))

    /// A fresh directory under /tmp, removed by the caller.
    static func temporaryDirectory() throws -> String {
        var template = Array("/tmp/sm-snapshot-test.XXXXXX".utf8CString)
        guard let path = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw SnapshotError.invalidArgument("mkdtemp failed")
        }
        return String(cString: path)
    }

    static func irqchip(_ id: Int32) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: MemoryLayout<kvm_irqchip>.size)
        withUnsafeBytes(of: UInt32(id).littleEndian) { for (i, b) in $0.enumerated() { bytes[i] = b } }
        bytes[8] = 0x5a
        return bytes
    }

    /// Machine and vCPU state with recognisable values, made without KVM.
    static func sampleState() -> (MachineState, VCPUState) {
        var clock = kvm_clock_data()
        clock.clock = 123_456_789
        clock.flags = UInt32(KVM_CLOCK_TSC_STABLE)
        let machine = MachineState(picMaster: irqchip(KVM_IRQCHIP_PIC_MASTER), picSlave: irqchip(KVM_IRQCHIP_PIC_SLAVE),
                                   ioapic: irqchip(KVM_IRQCHIP_IOAPIC), pit: kvm_pit_state2(), clock: clock)
        var regs = kvm_regs()
        regs.rip = 0x10_0003
        regs.rbx = 7
        var sregs = kvm_sregs()
        sregs.cr3 = 0x9000
        var xsave = [UInt8](repeating: 0, count: 4096)
        xsave[160] = 0xab   // XMM0's first byte
        var cpuidEntry = kvm_cpuid_entry2()
        cpuidEntry.function = 1
        cpuidEntry.ecx = 0x8000_0000
        let vcpu = VCPUState(mpState: kvm_mp_state(), regs: regs, sregs: sregs, fpu: .xsave(xsave), xcrs: kvm_xcrs(),
                             debugRegs: kvm_debugregs(), lapic: kvm_lapic_state(),
                             msrs: [.init(index: 0x10, value: 999), .init(index: 0xc000_0102, value: 0xfeed)],
                             events: kvm_vcpu_events(), cpuid: [cpuidEntry], tscKHz: 2_596_132)
        return (machine, vcpu)
    }

    /// Writes a sample snapshot of 1 MiB RAM with a marker at 0x1000.
    static func writeSample(to path: String, identity: SnapshotIdentity = identity) throws {
        let memory = try GuestMemory(size: 1 << 20)
        try memory.write(UInt64(0x1122_3344_5566_7788), at: GuestAddress(0x1000))
        let (machine, vcpu) = sampleState()
        try SnapshotFile.write(to: path, identity: identity, machine: machine, vcpus: [vcpu], memory: memory)
    }

    /// Flips every bit of the byte at `offset`.
    static func flipByte(_ path: String, at offset: Int) throws {
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: path))
        defer { try? handle.close() }
        try handle.seek(toOffset: UInt64(offset))
        let byte = try handle.read(upToCount: 1) ?? Data([0])
        try handle.seek(toOffset: UInt64(offset))
        try handle.write(contentsOf: [~(byte.first ?? 0)])
    }
}
