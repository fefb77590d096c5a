import CKVM

/// The CPUID each vCPU gets: KVM's supported CPUID (`KVM_GET_SUPPORTED_CPUID`), plus
/// what KVM emulates but does not list there, with this machine's topology (N
/// single-threaded cores in one package) in place of the host's. The same code runs
/// on Intel (kvm_intel) and AMD (kvm_amd) hosts: each leaf below is rewritten only
/// where the host reports it.
///
/// On the emulating nested KVM of the build machines (`HostKind.emulating`) none of
/// this reaches the guest kernel, whose CPUID instruction reports the host's; there
/// the kernel command line masks features instead.
public enum X86CPUID {
    /// CPUID.1:ECX bit 24: the LAPIC timer has TSC-deadline mode. KVM emulates it with
    /// its in-kernel LAPIC (`KVM_CAP_TSC_DEADLINE_TIMER`), but before Linux 6.14
    /// `KVM_GET_SUPPORTED_CPUID` leaves the bit clear (QEMU and Firecracker set it
    /// themselves). Without it the guest calibrates the LAPIC timer against the TSC;
    /// where that calibration fails its check (seen under a software CPU: "APIC timer
    /// disabled due to verification failure") the guest falls back to a PIT, which a
    /// microVM does not have, and no timer ever fires: sleeps and poll timeouts never
    /// end.
    static let tscDeadlineTimer: UInt32 = 1 << 24
    /// CPUID.1:ECX bit 31: running under a hypervisor.
    static let hypervisor: UInt32 = 1 << 31
    /// CPUID.1:EDX bit 28: EBX[23:16] (logical processors per package) is valid.
    static let hyperThreading: UInt32 = 1 << 28

    /// KVM's supported CPUID with the features KVM emulates but leaves out of it.
    /// Needs `KVM_CAP_TSC_DEADLINE_TIMER` (`Machine` requires it).
    public static func base(_ system: KVMSystem) throws(SystemCallError) -> [kvm_cpuid_entry2] {
        try system.supportedCPUID().map { entry in
            var e = entry
            if e.function == 1 { e.ecx |= tscDeadlineTimer }
            return e
        }
    }

    /// A digest of this host's CPU as KVM offers it to guests: vendor, family, model,
    /// stepping, feature flags, XSAVE features and address sizes. A guest booted on one
    /// CPU has patched its kernel and chosen its code paths for it, so a snapshot of it
    /// is restored only where this digest is the same. Only these fields: the rest of
    /// `KVM_GET_SUPPORTED_CPUID` comes from the CPUID instruction on whichever host CPU
    /// ran the ioctl (its APIC ids in leaves 1, 0xb, 0x1f and 0x8000001e; cache leaves,
    /// which differ between the core types of hybrid parts), and differs from call to call.
    public static func hostIdentity(_ system: KVMSystem) throws(SystemCallError) -> [UInt8] {
        hostIdentity(of: try base(system))
    }

    static func hostIdentity(of entries: [kvm_cpuid_entry2]) -> [UInt8] {
        // (function, subleaf, registers as eax, ebx, ecx, edx bits)
        let fields: [(UInt32, UInt32, [KeyPath<kvm_cpuid_entry2, UInt32>])] = [
            (0, 0, [\.eax, \.ebx, \.ecx, \.edx]),          // max leaf, vendor
            (1, 0, [\.eax, \.ecx, \.edx]),                  // signature, features (not EBX: APIC id)
            (7, 0, [\.eax, \.ebx, \.ecx, \.edx]),          // structured extended features
            (7, 1, [\.eax, \.ebx, \.ecx, \.edx]),
            (0xd, 0, [\.eax, \.edx]),                        // XSAVE: supported XCR0 bits
            (0xd, 1, [\.eax]),                               // XSAVEOPT/XSAVEC/XSAVES...
            (0x8000_0000, 0, [\.eax]),
            (0x8000_0001, 0, [\.ecx, \.edx]),               // extended features
            (0x8000_0008, 0, [\.eax]),                       // physical/virtual address sizes
        ]
        var hasher = SHA256()
        for (function, index, registers) in fields {
            guard let e = entries.first(where: { $0.function == function && ($0.index == index || index == 0 && $0.flags & 1 == 0) }) else {
                hasher.update([0xff])
                continue
            }
            for register in registers {
                let word = e[keyPath: register]
                hasher.update([UInt8(truncatingIfNeeded: word), UInt8(truncatingIfNeeded: word >> 8),
                               UInt8(truncatingIfNeeded: word >> 16), UInt8(truncatingIfNeeded: word >> 24)])
            }
        }
        return hasher.finalize()
    }

    /// `base` for vCPU `index` of `count`: its APIC id, the hypervisor bit, and a
    /// topology of `count` cores with one thread each in one package, for both
    /// vendors' topology leaves.
    public static func forVCPU(_ base: [kvm_cpuid_entry2], index: UInt32, count: Int) -> [kvm_cpuid_entry2] {
        let cores = UInt32(count)
        // Bits of the APIC id that number the cores: ceil(log2(count)).
        let coreBits = UInt32(count <= 1 ? 0 : (Int.bitWidth - (count - 1).leadingZeroBitCount))
        return base.map { entry in
            var e = entry
            switch e.function {
            case 1:
                e.ebx = (e.ebx & 0x0000_ffff) | (index << 24) | ((cores & 0xff) << 16)
                e.ecx |= hypervisor
                if count > 1 { e.edx |= hyperThreading } else { e.edx &= ~hyperThreading }
            case 4:
                // Intel deterministic cache parameters: EAX[31:26] cores per package - 1,
                // EAX[25:14] logical processors sharing this cache - 1 (per-core caches
                // below level 3, the last level shared by all).
                guard e.eax & 0x1f != 0 else { break }   // type 0: no more caches
                let level = (e.eax >> 5) & 0x7
                let sharing = level >= 3 ? cores - 1 : 0
                e.eax = (e.eax & 0x3fff) | ((sharing & 0xfff) << 14) | (((cores - 1) & 0x3f) << 26)
            case 0xb, 0x1f:
                // Extended topology: subleaf 0 the SMT level (1 thread), subleaf 1 the
                // core level (`count` cores), then invalid levels; EDX the x2APIC id.
                switch e.index {
                case 0:
                    e.eax = 0; e.ebx = 1; e.ecx = (1 << 8) | 0
                case 1:
                    e.eax = coreBits; e.ebx = cores; e.ecx = (2 << 8) | 1
                default:
                    e.eax = 0; e.ebx = 0; e.ecx = e.index & 0xff
                }
                e.edx = index
            case 0x8000_0008:
                // AMD: ECX[7:0] cores per package - 1, ECX[15:12] APIC id bits for them
                // (0: derive from [7:0]).
                e.ecx = (e.ecx & ~0xf0ff) | ((cores - 1) & 0xff)
            case 0x8000_001e:
                // AMD extended APIC id, compute unit id (one thread per unit), node 0.
                e.eax = index
                e.ebx = index & 0xff
                e.ecx = 0
            default:
                break
            }
            return e
        }
    }
}
