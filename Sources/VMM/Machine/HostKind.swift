#if canImport(Glibc)
import Glibc
#endif

/// What kind of KVM this VMM runs on. Detected, never assumed: the workarounds for an
/// emulating nested KVM are applied only there, and `--debug` says which was found.
public enum HostKind: String, Sendable, CaseIterable {
    /// KVM on VT-x / AMD-V: the guest runs natively.
    case hardware
    /// KVM provided by `kvm_pvm` with `pvm_native` (a pagetable-based nested
    /// hypervisor): guest kernel code runs in KVM's instruction emulator, which lacks
    /// some instructions, and SYSCALL from guest user mode does not reach CPL0.
    /// Multi-vCPU guests need no workaround of their own there: the APs' INIT/SIPI
    /// bring-up and real-mode trampoline run (guest/README.md, SMP); the quirks
    /// below and in `emulatorQuirk` apply on every vCPU.
    case emulating

    /// Reads `/sys/module/kvm_pvm/parameters/pvm_native`.
    public static func detect(sysfs: String = "/sys/module") -> HostKind {
        if let native = readFirstLine("\(sysfs)/kvm_pvm/parameters/pvm_native"), native.hasPrefix("Y") {
            return .emulating
        }
        return .hardware
    }

    /// glibc (2.33+) hwcaps names for the AVX families and the preference that picks
    /// AVX memmove; unknown names are ignored by glibc.
    public static let glibcTunables = "glibc.cpu.hwcaps=-AVX,-AVX2,-AVX512F,-AVX512VL,-AVX512BW,-AVX_Fast_Unaligned_Load"

    public var summary: String {
        switch self {
        case .hardware:
            return "hardware KVM: guest code runs natively; no emulator workarounds"
        case .emulating:
            return "nested emulating KVM (kvm_pvm, pvm_native=Y): guest kernel code is emulated (~1000x slower); " +
                "adding command-line workarounds for instructions the emulator lacks"
        }
    }

    /// Kernel parameters that keep instructions the emulator cannot run out of the
    /// guest kernel (see shared/notes/nested-kvm.md and guest/README.md). Features are
    /// masked on the command line because KVM_SET_CPUID2 does not reach the guest's
    /// kernel-mode CPUID on this hypervisor.
    public var kernelWorkarounds: [String] {
        switch self {
        case .hardware:
            return []
        case .emulating:
            return [
                "noxsave",                       // XRSTOR is not emulated
                // CPU features masked here because KVM_SET_CPUID2 does not reach the
                // guest's kernel-mode CPUID on this hypervisor; each names an
                // instruction the emulator lacks or emulates badly.
                "clearcpuid=popcnt,cx16,movbe,smap,smep,fsgsbase,pcid,invpcid,rdrand,rdseed,rdpid,pku,umip,avx,avx2,bmi1,bmi2,erms,fsrm,la57",
                // Boot work that costs seconds under emulation: write-protecting
                // kernel text/rodata page by page (guest-internal hardening only).
                "rodata=off",
                // Passed to the agent (and by it to container processes) as environment:
                // glibc's AVX code paths off. Guest user code runs natively with the
                // host's XCR0 (AVX on) while the guest kernel, with noxsave, saves no
                // YMM state at context switches: AVX users corrupt each other.
                "GLIBC_TUNABLES=" + Self.glibcTunables,
            ]
        }
    }
}

func readFirstLine(_ path: String) -> String? {
    guard let file = fopen(path, "r") else { return nil }
    defer { fclose(file) }
    var buffer = [CChar](repeating: 0, count: 256)
    guard fgets(&buffer, Int32(buffer.count), file) != nil else { return nil }
    let line = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    return line.hasSuffix("\n") ? String(line.dropLast()) : line
}
