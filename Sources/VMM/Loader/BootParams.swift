/// Writes Linux's `struct boot_params` (Documentation/x86/boot.rst, zero-page.rst)
/// for a 64-bit entry: command line, initrd and the e820 memory map.
public struct BootParams: Sendable {
    public enum E820Type: UInt32, Sendable { case ram = 1, reserved = 2 }
    public struct E820Entry: Sendable, Equatable {
        public var address: UInt64
        public var size: UInt64
        public var type: E820Type
    }

    public enum BuildError: Error, CustomStringConvertible, Sendable, Equatable {
        case commandLineTooLong(Int, limit: Int)
        case initrdDoesNotFit(size: Int, available: UInt64)

        public var description: String {
            switch self {
            case let .commandLineTooLong(n, limit): return "kernel command line is \(n) bytes, the limit is \(limit - 1)"
            case let .initrdDoesNotFit(size, available): return "initrd of \(size) bytes does not fit above the kernel (\(available) bytes free)"
            }
        }
    }

    // Offsets in struct boot_params (arch/x86/include/uapi/asm/bootparam.h).
    static let e820EntriesOffset: UInt64 = 0x1e8
    static let bootFlagOffset: UInt64 = 0x1fe
    static let headerOffset: UInt64 = 0x202
    static let versionOffset: UInt64 = 0x206
    static let typeOfLoaderOffset: UInt64 = 0x210
    static let loadFlagsOffset: UInt64 = 0x211
    static let ramdiskImageOffset: UInt64 = 0x218
    static let ramdiskSizeOffset: UInt64 = 0x21c
    static let commandLinePointerOffset: UInt64 = 0x228
    static let kernelAlignmentOffset: UInt64 = 0x230
    static let commandLineSizeOffset: UInt64 = 0x238
    static let setupDataOffset: UInt64 = 0x250
    /// `SETUP_RNG_SEED` (arch/x86/include/uapi/asm/bootparam.h).
    static let setupRNGSeed: UInt32 = 9
    static let e820TableOffset: UInt64 = 0x2d0
    static let e820MaxEntries = 128

    public var commandLine: String
    public var initrd: (address: GuestAddress, size: Int)?
    public var e820: [E820Entry]
    /// Random bytes for the guest's CRNG (`SETUP_RNG_SEED`): with them the guest kernel
    /// need not gather entropy at boot (slow under emulation) before getrandom(2)
    /// returns. Credited when the kernel trusts its boot loader (CONFIG_RANDOM_TRUST_BOOTLOADER:
    /// setup_data is read before the command line, so the parameter comes too late).
    public var randomSeed: [UInt8] = []

    /// The e820 map of a guest with `ramSize` bytes: conventional memory below the
    /// EBDA, then everything from 1 MiB up.
    public static func memoryMap(ramSize: UInt64) -> [E820Entry] {
        [
            E820Entry(address: 0, size: X86Layout.ebda.rawValue, type: .ram),
            E820Entry(address: X86Layout.highMemory.rawValue, size: ramSize - X86Layout.highMemory.rawValue, type: .ram),
        ]
    }

    public init(commandLine: String, ramSize: UInt64, initrd: (address: GuestAddress, size: Int)? = nil) {
        self.commandLine = commandLine
        self.initrd = initrd
        self.e820 = Self.memoryMap(ramSize: ramSize)
    }

    /// Where an initrd of `size` bytes goes: page-aligned at the top of RAM, above `kernelEnd`.
    public static func initrdAddress(size: Int, ramSize: UInt64, kernelEnd: GuestAddress) throws(BuildError) -> GuestAddress {
        let aligned = (UInt64(size) + 4095) & ~4095
        guard aligned < ramSize, ramSize - aligned >= kernelEnd.rawValue else {
            throw .initrdDoesNotFit(size: size, available: ramSize > kernelEnd.rawValue ? ramSize - kernelEnd.rawValue : 0)
        }
        return GuestAddress((ramSize - aligned) & ~4095)
    }

    /// Writes the zero page and the command line into `memory`.
    public func write(to memory: GuestMemory) throws {
        let bytes = Array(commandLine.utf8)
        guard bytes.count < X86Layout.commandLineCapacity else {
            throw BuildError.commandLineTooLong(bytes.count, limit: X86Layout.commandLineCapacity)
        }
        try memory.write(bytes: bytes + [0], at: X86Layout.commandLine)

        let page = X86Layout.zeroPage
        try memory.zero(at: page, count: 4096)
        try memory.write(UInt16(0xaa55), at: page + Self.bootFlagOffset)
        try memory.write(UInt32(0x5372_6448), at: page + Self.headerOffset)  // "HdrS"
        try memory.write(UInt16(0x020f), at: page + Self.versionOffset)     // boot protocol 2.15
        try memory.write(UInt8(0xff), at: page + Self.typeOfLoaderOffset)   // undefined loader
        try memory.write(UInt8(0x01), at: page + Self.loadFlagsOffset)      // LOADED_HIGH
        try memory.write(UInt32(0x0100_0000), at: page + Self.kernelAlignmentOffset)
        try memory.write(UInt32(X86Layout.commandLine.rawValue), at: page + Self.commandLinePointerOffset)
        try memory.write(UInt32(X86Layout.commandLineCapacity - 1), at: page + Self.commandLineSizeOffset)
        if let initrd {
            try memory.write(UInt32(initrd.address.rawValue), at: page + Self.ramdiskImageOffset)
            try memory.write(UInt32(initrd.size), at: page + Self.ramdiskSizeOffset)
        }
        if !randomSeed.isEmpty {
            let entry = X86Layout.setupData
            try memory.write(UInt64(0), at: entry)                     // next: none
            try memory.write(Self.setupRNGSeed, at: entry + 8)
            try memory.write(UInt32(randomSeed.count), at: entry + 12)
            try memory.write(bytes: randomSeed, at: entry + 16)
            try memory.write(entry.rawValue, at: page + Self.setupDataOffset)
        }
        precondition(e820.count <= Self.e820MaxEntries)
        try memory.write(UInt8(e820.count), at: page + Self.e820EntriesOffset)
        for (i, entry) in e820.enumerated() {
            let at = page + Self.e820TableOffset + UInt64(i * 20)
            try memory.write(entry.address, at: at)
            try memory.write(entry.size, at: at + 8)
            try memory.write(entry.type.rawValue, at: at + 16)
        }
    }
}
