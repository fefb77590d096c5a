/// Where the x86_64 boot structures live in guest physical memory.
/// One table, so the loader, MP table, page tables and e820 map agree.
public enum X86Layout {
    /// GDT and (empty) IDT used only until the kernel loads its own.
    public static let gdt = GuestAddress(0x500)
    public static let idt = GuestAddress(0x520)
    /// `struct setup_data` entries chained from boot_params (the RNG seed).
    public static let setupData = GuestAddress(0x6000)
    /// `struct boot_params` ("zero page") handed to the kernel in RSI.
    public static let zeroPage = GuestAddress(0x7000)
    public static let bootStack = GuestAddress(0x8ff0)
    /// Identity-mapped page tables for the first GiB (PML4, PDPT, PD with 2 MiB pages).
    public static let pml4 = GuestAddress(0x9000)
    public static let pdpt = GuestAddress(0xa000)
    public static let pageDirectory = GuestAddress(0xb000)
    /// Kernel command line.
    public static let commandLine = GuestAddress(0x20000)
    /// x86's COMMAND_LINE_SIZE (including the terminating NUL).
    public static let commandLineCapacity = 2048
    /// Start of the extended BIOS data area: the MP table lives here, outside e820 RAM.
    public static let ebda = GuestAddress(0x9fc00)
    /// Conventional memory ends here; the ISA hole follows up to 1 MiB.
    public static let highMemory = GuestAddress(0x100000)
    /// Devices (virtio-mmio) start here; guest RAM must end below.
    public static let mmioStart = GuestAddress(0xd000_0000)
    public static let mmioDeviceSize: UInt64 = 0x1000
    /// In-kernel irqchip fixed addresses.
    public static let ioAPIC: UInt32 = 0xfec0_0000
    public static let localAPIC: UInt32 = 0xfee0_0000
    /// Largest guest RAM that fits below the MMIO window.
    public static let maximumRAM: UInt64 = 0xc000_0000
    /// Pages KVM needs for the VMX TSS and identity map (below 4 GiB, outside RAM).
    public static let tss: UInt64 = 0xfffb_d000
    public static let identityMap: UInt64 = 0xfffb_c000
}
