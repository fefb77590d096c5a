import Testing
import CKVM
@testable import VMM

/// The CPUID a vCPU gets, from a synthetic KVM_GET_SUPPORTED_CPUID (no /dev/kvm needed).
@Suite struct X86CPUIDTests {
    static func entry(_ function: UInt32, _ index: UInt32 = 0, eax: UInt32 = 0, ebx: UInt32 = 0, ecx: UInt32 = 0, edx: UInt32 = 0) -> kvm_cpuid_entry2 {
        var e = kvm_cpuid_entry2()
        e.function = function; e.index = index
        e.eax = eax; e.ebx = ebx; e.ecx = ecx; e.edx = edx
        return e
    }

    /// A host's leaves as an 8-core/16-thread Intel or AMD part reports them.
    static let host: [kvm_cpuid_entry2] = [
        entry(1, ebx: 0x0510_0800, ecx: 0x0020_0000, edx: 0x1789_fbff),          // 16 logical, APIC id 5
        entry(4, 0, eax: 0x1c00_4121), entry(4, 1, eax: 0x1c00_4122),              // L1d, L1i: 2 threads, 8 cores
        entry(4, 2, eax: 0x1c00_4143), entry(4, 3, eax: 0x1c03_c163),              // L2; L3 shared by 16
        entry(4, 4, eax: 0),                                                       // end
        entry(0xb, 0, eax: 1, ebx: 2, ecx: 0x100, edx: 5), entry(0xb, 1, eax: 4, ebx: 16, ecx: 0x201, edx: 5),
        entry(0xb, 2, eax: 0, ebx: 0, ecx: 2, edx: 5),
        entry(0x8000_0008, ecx: 0x700f),                                           // 16 threads, 7 APIC id bits
        entry(0x8000_001e, eax: 5, ebx: 0x0102, ecx: 0x0100),
    ]

    static func leaf(_ entries: [kvm_cpuid_entry2], _ function: UInt32, _ index: UInt32 = 0) throws -> kvm_cpuid_entry2 {
        try #require(entries.first { $0.function == function && $0.index == index })
    }

    @Test(arguments: [(UInt32(0), 1), (UInt32(1), 2), (UInt32(3), 4), (UInt32(6), 8)])
    func topologyIsTheMachines(index: UInt32, count: Int) throws {
        let cpuid = X86CPUID.forVCPU(Self.host, index: index, count: count)
        let leaf1 = try Self.leaf(cpuid, 1)
        #expect(leaf1.ebx >> 24 == index, "initial APIC id")
        #expect((leaf1.ebx >> 16) & 0xff == UInt32(count), "logical processors per package")
        #expect(leaf1.ebx & 0xffff == 0x0800, "CLFLUSH size and brand kept")
        #expect(leaf1.ecx & (1 << 31) != 0, "hypervisor bit")
        #expect((leaf1.edx & (1 << 28) != 0) == (count > 1), "HTT only with more than one CPU")
        #expect(leaf1.ecx & 0x0020_0000 != 0, "host features kept (x2APIC)")
        // Intel cache leaves: `count` cores, per-core L1/L2, L3 shared by all.
        for sub in UInt32(0)...2 {
            let cache = try Self.leaf(cpuid, 4, sub)
            #expect(cache.eax >> 26 == UInt32(count - 1))
            #expect((cache.eax >> 14) & 0xfff == 0)
            #expect(cache.eax & 0x3fff == Self.host[Int(sub) + 1].eax & 0x3fff, "type, level and flags kept")
        }
        let l3 = try Self.leaf(cpuid, 4, 3)
        #expect((l3.eax >> 14) & 0xfff == UInt32(count - 1))
        #expect(try Self.leaf(cpuid, 4, 4).eax == 0, "the terminating subleaf stays empty")
        // Extended topology: 1 thread per core, `count` cores; EDX the x2APIC id.
        let smt = try Self.leaf(cpuid, 0xb, 0), core = try Self.leaf(cpuid, 0xb, 1), end = try Self.leaf(cpuid, 0xb, 2)
        #expect(smt.eax == 0 && smt.ebx == 1 && smt.ecx == 0x100 && smt.edx == index)
        #expect(core.ebx == UInt32(count) && core.ecx == 0x201 && core.edx == index)
        #expect(1 << core.eax >= count && (count == 1 || 1 << (core.eax - 1) < count), "core bits = ceil(log2(count))")
        #expect(end.ebx == 0 && (end.ecx >> 8) & 0xff == 0, "invalid level ends the list")
        // AMD: NC and the extended APIC id.
        let amd8 = try Self.leaf(cpuid, 0x8000_0008)
        #expect(amd8.ecx & 0xff == UInt32(count - 1) && (amd8.ecx >> 12) & 0xf == 0)
        let amd1e = try Self.leaf(cpuid, 0x8000_001e)
        #expect(amd1e.eax == index && amd1e.ebx & 0xff == index && (amd1e.ebx >> 8) & 0xff == 0 && amd1e.ecx == 0)
    }

    @Test func leavesTheHostDoesNotReportStayAbsent() {
        let cpuid = X86CPUID.forVCPU([Self.entry(0), Self.entry(1)], index: 0, count: 2)
        #expect(cpuid.map(\.function) == [0, 1])
    }

    /// On the machine's own KVM: the TSC-deadline timer is offered (the guest's clock
    /// event device), whether or not KVM_GET_SUPPORTED_CPUID lists it.
    @Test func baseOffersTheTSCDeadlineTimer() throws {
        try requireKVM()
        let kvm = try KVMSystem()
        #expect(kvm.checkExtension(KVM_CAP_TSC_DEADLINE_TIMER) > 0)
        let leaf1 = try Self.leaf(try X86CPUID.base(kvm), 1)
        #expect(leaf1.ecx & (1 << 24) != 0)
    }

    /// The host CPU's digest ignores what depends on the host CPU that ran the ioctl
    /// (APIC ids, topology, caches) and follows the signature and features.
    @Test func theHostIdentityIgnoresPerCPUFields() {
        var entries = Self.host + [Self.entry(0, eax: 0x1f, ebx: 0x756e_6547), Self.entry(7, ebx: 0x1234)]
        let first = X86CPUID.hostIdentity(of: entries)
        entries[0].ebx = (entries[0].ebx & 0x00ff_ffff) | (9 << 24)      // another APIC id
        entries[6].edx = 9; entries[7].edx = 9; entries[8].edx = 9          // x2APIC ids in 0xb
        entries[10].eax = 9                                                 // AMD extended APIC id
        entries[1].eax ^= 0x3c00_0000                                       // cache sharing
        #expect(X86CPUID.hostIdentity(of: entries) == first)
        entries[0].ecx ^= 1                                                 // a feature
        #expect(X86CPUID.hostIdentity(of: entries) != first)
        entries[0].ecx ^= 1
        entries[12].ebx ^= 1                                                // leaf 7 feature
        #expect(X86CPUID.hostIdentity(of: entries) != first)
    }

    /// The host CPU's digest (in the snapshot key) is a SHA-256 and stable.
    @Test func theHostIdentityIsStable() throws {
        try requireKVM()
        let first = try X86CPUID.hostIdentity(KVMSystem())
        #expect(first.count == 32)
        #expect(try X86CPUID.hostIdentity(KVMSystem()) == first)
    }
}
