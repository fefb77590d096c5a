/// An Intel MultiProcessor Specification 1.4 table, so a guest without ACPI finds its
/// CPUs, the IOAPIC and how ISA interrupts reach it. Written at the EBDA, where Linux
/// scans (`smp_scan_config(639 * 0x400, 0x400)`).
public struct MPTable: Sendable {
    public var cpuCount: Int
    /// IOAPIC pins wired 1:1 to ISA IRQs (legacy IRQ 0, the PIT, goes to pin 2 as KVM routes it).
    public static let ioAPICPins = 24

    public init(cpuCount: Int) {
        precondition(cpuCount >= 1 && cpuCount < 255)
        self.cpuCount = cpuCount
    }

    var ioAPICID: UInt8 { UInt8(cpuCount) }

    /// The table's bytes and the floating pointer, placed at `address`.
    public func bytes(at address: GuestAddress) -> [UInt8] {
        var entries: [UInt8] = []
        var entryCount: UInt16 = 0
        for cpu in 0..<cpuCount {
            var e = [UInt8](repeating: 0, count: 20)
            e[0] = 0                                 // processor
            e[1] = UInt8(cpu)                         // local APIC id
            e[2] = 0x14                               // local APIC version
            e[3] = 0x01 | (cpu == 0 ? 0x02 : 0)       // enabled, bootstrap processor
            put32(&e, 4, 0x600)                       // signature: family 6
            put32(&e, 8, 0x201)                       // features: FPU, APIC
            entries += e; entryCount += 1
        }
        entries += [1, 0] + Array("ISA   ".utf8); entryCount += 1   // bus 0 is ISA
        var ioapic = [UInt8](repeating: 0, count: 8)
        ioapic[0] = 2; ioapic[1] = ioAPICID; ioapic[2] = 0x11; ioapic[3] = 1
        put32(&ioapic, 4, X86Layout.ioAPIC)
        entries += ioapic; entryCount += 1
        for irq in 0..<16 {
            // type 3 (I/O interrupt), INT, conforming polarity/trigger, ISA bus 0.
            let pin = irq == 0 ? 2 : irq
            entries += [3, 0, 0, 0, 0, UInt8(irq), ioAPICID, UInt8(pin)]; entryCount += 1
        }
        // Local interrupts: LINT0 ExtINT, LINT1 NMI, to all local APICs.
        entries += [4, 3, 0, 0, 0, 0, 0xff, 0]; entryCount += 1
        entries += [4, 1, 0, 0, 0, 0, 0xff, 1]; entryCount += 1

        var header = [UInt8](repeating: 0, count: 44)
        header.replaceSubrange(0..<4, with: Array("PCMP".utf8))
        put16(&header, 4, UInt16(44 + entries.count))
        header[6] = 4                                     // spec revision 1.4
        header.replaceSubrange(8..<16, with: Array("SMRUNC  ".utf8))
        header.replaceSubrange(16..<28, with: Array("MICROVM     ".utf8))
        put16(&header, 34, entryCount)
        put32(&header, 36, X86Layout.localAPIC)
        var table = header + entries
        table[7] = checksum(table)

        var floating = [UInt8](repeating: 0, count: 16)
        floating.replaceSubrange(0..<4, with: Array("_MP_".utf8))
        put32(&floating, 4, UInt32(address.rawValue) + 16)  // the table follows the pointer
        floating[8] = 1                                     // length in 16-byte units
        floating[9] = 4
        floating[10] = checksum(floating)
        return floating + table
    }

    public func write(to memory: GuestMemory, at address: GuestAddress = X86Layout.ebda) throws {
        try memory.write(bytes: bytes(at: address), at: address)
    }

    private func checksum(_ bytes: [UInt8]) -> UInt8 {
        0 &- bytes.reduce(0, &+)
    }
}

@inline(__always) func put16(_ b: inout [UInt8], _ at: Int, _ v: UInt16) {
    b[at] = UInt8(v & 0xff); b[at + 1] = UInt8(v >> 8)
}
@inline(__always) func put32(_ b: inout [UInt8], _ at: Int, _ v: UInt32) {
    for i in 0..<4 { b[at + i] = UInt8((v >> (8 * UInt32(i))) & 0xff) }
}
