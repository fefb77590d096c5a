#if canImport(Glibc)
import Glibc
#endif
import CKVM

/// Puts a vCPU in 64-bit long mode at the kernel's entry, as the Linux 64-bit
/// boot protocol expects: paging on with an identity map, flat segments,
/// RSI = boot_params.
public enum X86VCPUSetup {
    // GDT entries: null, 64-bit code (0x08), data (0x10), TSS (0x18).
    static let gdt: [UInt64] = [
        0,
        gdtEntry(flags: 0xa09b, base: 0, limit: 0xfffff),
        gdtEntry(flags: 0xc093, base: 0, limit: 0xfffff),
        gdtEntry(flags: 0x808b, base: 0, limit: 0xfffff),
    ]
    static let codeSelector: UInt16 = 0x08
    static let dataSelector: UInt16 = 0x10
    static let tssSelector: UInt16 = 0x18

    static func gdtEntry(flags: UInt64, base: UInt64, limit: UInt64) -> UInt64 {
        ((base & 0xff00_0000) << 32) | ((flags & 0xf0ff) << 40) | ((limit & 0x000f_0000) << 32)
            | ((base & 0x00ff_ffff) << 16) | (limit & 0x0000_ffff)
    }

    /// Writes the GDT, an empty IDT and identity page tables for the first GiB.
    public static func writeBootTables(to memory: GuestMemory) throws {
        for (i, entry) in gdt.enumerated() {
            try memory.write(entry, at: X86Layout.gdt + UInt64(i * 8))
        }
        try memory.write(UInt64(0), at: X86Layout.idt)
        try memory.zero(at: X86Layout.pml4, count: 3 * 4096)
        try memory.write(X86Layout.pdpt.rawValue | 0x03, at: X86Layout.pml4)
        try memory.write(X86Layout.pageDirectory.rawValue | 0x03, at: X86Layout.pdpt)
        for i in 0..<512 {  // 512 x 2 MiB pages: present, writable, huge
            try memory.write((UInt64(i) << 21) | 0x83, at: X86Layout.pageDirectory + UInt64(i * 8))
        }
    }

    static func segment(selector: UInt16, type: UInt8, code: Bool) -> kvm_segment {
        var s = kvm_segment()
        s.base = 0
        s.limit = 0xffff_ffff
        s.selector = selector
        s.type = type
        s.present = 1
        s.dpl = 0
        s.db = code ? 0 : 1
        s.s = 1
        s.l = code ? 1 : 0
        s.g = 1
        return s
    }

    /// Configures `vcpu` (the bootstrap processor, vCPU 0) to start at `entry` in long mode.
    public static func configure(_ vcpu: KVMVCPU, entry: GuestAddress, cpuid: [kvm_cpuid_entry2], cpuCount: Int) throws {
        try configureCommon(vcpu, cpuid: cpuid, cpuCount: cpuCount)

        var sregs = try vcpu.specialRegisters()
        let code = segment(selector: codeSelector, type: 0xb, code: true)
        let data = segment(selector: dataSelector, type: 0x3, code: false)
        sregs.cs = code
        sregs.ds = data; sregs.es = data; sregs.fs = data; sregs.gs = data; sregs.ss = data
        var tss = segment(selector: tssSelector, type: 0xb, code: false)
        tss.s = 0; tss.db = 0
        sregs.tr = tss
        sregs.gdt.base = X86Layout.gdt.rawValue
        sregs.gdt.limit = UInt16(gdt.count * 8 - 1)
        sregs.idt.base = X86Layout.idt.rawValue
        sregs.idt.limit = 7
        sregs.cr0 |= 0x1 | 0x8000_0000          // PE, PG
        sregs.cr3 = X86Layout.pml4.rawValue
        sregs.cr4 |= 0x20                       // PAE
        sregs.efer |= 0x100 | 0x400             // LME, LMA
        try vcpu.setSpecialRegisters(sregs)

        var regs = kvm_regs()
        regs.rflags = 0x2
        regs.rip = entry.rawValue
        regs.rsp = X86Layout.bootStack.rawValue
        regs.rbp = X86Layout.bootStack.rawValue
        regs.rsi = X86Layout.zeroPage.rawValue
        try vcpu.setRegisters(regs)

        var fpu = kvm_fpu()
        fpu.fcw = 0x37f
        fpu.mxcsr = 0x1f80
        try vcpu.setFPU(fpu)
        try setLocalInterruptModes(vcpu)
    }

    /// Configures an application processor (vCPU 1...): its CPUID (own APIC id), the
    /// firmware MSRs and LAPIC LINT modes, and nothing else. Its registers stay in
    /// the reset state and its MP state UNINITIALIZED: the guest kernel starts it with
    /// INIT and STARTUP IPIs through KVM's in-kernel LAPIC, at the kernel's own
    /// real-mode trampoline, as firmware leaves APs on a PC.
    public static func configureApplicationProcessor(_ vcpu: KVMVCPU, cpuid: [kvm_cpuid_entry2], cpuCount: Int) throws {
        precondition(vcpu.index != 0, "vCPU 0 is the bootstrap processor")
        try configureCommon(vcpu, cpuid: cpuid, cpuCount: cpuCount)
        try setLocalInterruptModes(vcpu)
        // KVM creates non-BSP vCPUs UNINITIALIZED when the irqchip is in-kernel; say so
        // explicitly, so an AP never runs from its reset vector without a SIPI.
        try vcpu.setMPState(kvm_mp_state(mp_state: UInt32(KVM_MP_STATE_UNINITIALIZED)))
    }

    /// What every vCPU gets: CPUID (`cpuid` is `X86CPUID.base`) with its APIC id and
    /// the machine's topology, boot MSRs.
    /// The TSC MSR is written 0 on each, in quick succession, which KVM treats as
    /// one synchronized TSC (all vCPUs share one offset).
    static func configureCommon(_ vcpu: KVMVCPU, cpuid: [kvm_cpuid_entry2], cpuCount: Int) throws {
        try vcpu.setCPUID(X86CPUID.forVCPU(cpuid, index: vcpu.index, count: cpuCount))
        try vcpu.setMSRs(bootMSRs)
    }

    /// LINT0 delivers ExtINT (the PIC), LINT1 NMI, as firmware leaves them (the MP
    /// table says the same for every local APIC).
    static func setLocalInterruptModes(_ vcpu: KVMVCPU) throws {
        var lapic = try vcpu.localAPIC()
        withUnsafeMutableBytes(of: &lapic.regs) { regs in
            func update(_ offset: Int, mode: UInt32) {
                var value = regs.loadUnaligned(fromByteOffset: offset, as: UInt32.self)
                value = (value & ~0x700) | mode
                regs.storeBytes(of: value, toByteOffset: offset, as: UInt32.self)
            }
            update(0x350, mode: 0x700)
            update(0x360, mode: 0x400)
        }
        try vcpu.setLocalAPIC(lapic)
    }

    /// MSRs as firmware leaves them (Firecracker's boot MSR set).
    static let bootMSRs: [(index: UInt32, value: UInt64)] = [
        (0x174, 0), (0x175, 0), (0x176, 0),        // SYSENTER_CS / ESP / EIP
        (0xc000_0081, 0), (0xc000_0082, 0),        // STAR, LSTAR
        (0xc000_0083, 0), (0xc000_0084, 0),        // CSTAR, SYSCALL_MASK
        (0xc000_0102, 0),                          // KERNEL_GS_BASE
        (0x10, 0),                                 // TSC
        (0x1a0, 1),                                // MISC_ENABLE: fast strings
    ]

    /// Injects a #BP for an INT3 the emulator could not run: INT3 is a trap, so the
    /// saved RIP is the next instruction (the kernel checks `regs->ip - 1`).
    public static func injectBreakpoint(_ vcpu: KVMVCPU) throws {
        var regs = try vcpu.registers()
        regs.rip &+= 1
        try vcpu.setRegisters(regs)
        var events = try vcpu.events()
        events.exception.injected = 1
        events.exception.nr = 3
        events.exception.has_error_code = 0
        events.exception.error_code = 0
        events.flags = 0
        try vcpu.setEvents(events)
    }

    /// Treats an instruction as done: RIP moves past its `length` bytes.
    public static func skipInstruction(_ vcpu: KVMVCPU, length: Int) throws {
        var regs = try vcpu.registers()
        regs.rip &+= UInt64(length)
        try vcpu.setRegisters(regs)
    }
}
