/// Loads an x86_64 ELF `vmlinux` into guest memory (Linux 64-bit boot protocol:
/// the segments go to their physical addresses and the vCPU starts at `e_entry`,
/// which for vmlinux is the physical address of `startup_64`).
/// Knows guest memory, not KVM. The file is untrusted input too: every offset
/// and size is checked against the file and guest RAM.
public enum ELFLoader {
    public struct Image: Sendable, Equatable {
        /// Physical entry point (`e_entry`).
        public var entry: GuestAddress
        /// Lowest and highest physical bytes the segments occupy.
        public var lowest: GuestAddress
        public var end: GuestAddress
        /// PVH entry point from the `XEN_ELFNOTE_PHYS32_ENTRY` note, when present.
        public var pvhEntry: GuestAddress?
    }

    public enum LoadError: Error, CustomStringConvertible, Sendable, Equatable {
        case notELF(String)
        case unsupported(String, reason: String)
        case malformed(String, reason: String)
        case doesNotFit(String, segment: Int, address: GuestAddress, size: UInt64, guestRAM: UInt64)

        public var description: String {
            switch self {
            case .notELF(let path): return "load kernel `\(path)`: not an ELF file (want an uncompressed x86_64 vmlinux)"
            case let .unsupported(path, reason): return "load kernel `\(path)`: \(reason)"
            case let .malformed(path, reason): return "load kernel `\(path)`: malformed ELF: \(reason)"
            case let .doesNotFit(path, segment, address, size, ram):
                return "load kernel `\(path)`: segment \(segment) (\(size) bytes at \(address)) does not fit in \(ram >> 20) MiB of guest RAM"
            }
        }
    }

    static let ptLoad: UInt32 = 1
    static let ptNote: UInt32 = 4
    static let xenNotePhys32Entry: UInt32 = 18

    /// Parses `file` (the whole vmlinux) and copies its PT_LOAD segments into `memory`.
    public static func load(_ file: [UInt8], name: String, into memory: GuestMemory) throws -> Image {
        try file.withUnsafeBytes { try load($0, name: name, into: memory) }
    }

    public static func load(_ raw: UnsafeRawBufferPointer, name: String, into memory: GuestMemory) throws -> Image {
        let image = try parse(raw, name: name, guestRAM: memory.size)
        for segment in try segments(raw, name: name) where segment.type == ptLoad {
            if segment.fileSize > 0 {
                let bytes = UnsafeRawBufferPointer(rebasing: raw[Int(segment.offset)..<Int(segment.offset + segment.fileSize)])
                try memory.write(bytes: bytes, at: GuestAddress(segment.physicalAddress))
            }
            if segment.memorySize > segment.fileSize {
                try memory.zero(at: GuestAddress(segment.physicalAddress + segment.fileSize),
                                count: Int(segment.memorySize - segment.fileSize))
            }
        }
        return image
    }

    struct Segment {
        var type: UInt32
        var offset: UInt64
        var physicalAddress: UInt64
        var fileSize: UInt64
        var memorySize: UInt64
    }

    /// Validates the header and segments without touching guest memory.
    public static func parse(_ file: [UInt8], name: String, guestRAM: UInt64) throws -> Image {
        try file.withUnsafeBytes { try parse($0, name: name, guestRAM: guestRAM) }
    }

    public static func parse(_ raw: UnsafeRawBufferPointer, name: String, guestRAM: UInt64) throws -> Image {
        guard raw.count >= 64, raw[0] == 0x7f, raw[1] == 0x45, raw[2] == 0x4c, raw[3] == 0x46 else { throw LoadError.notELF(name) }
        guard raw[4] == 2 else { throw LoadError.unsupported(name, reason: "32-bit ELF; want ELFCLASS64") }
        guard raw[5] == 1 else { throw LoadError.unsupported(name, reason: "big-endian ELF") }
        let machine = raw.loadUnaligned(fromByteOffset: 18, as: UInt16.self)
        guard machine == 62 else { throw LoadError.unsupported(name, reason: "e_machine \(machine), want EM_X86_64 (62)") }
        let entry = raw.loadUnaligned(fromByteOffset: 24, as: UInt64.self)
        var lowest = UInt64.max, end: UInt64 = 0
        var pvh: GuestAddress?
        for (i, segment) in try segments(raw, name: name).enumerated() {
            if segment.type == ptNote {
                pvh = pvh ?? pvhEntry(raw, segment)
            }
            guard segment.type == ptLoad else { continue }
            guard segment.fileSize <= segment.memorySize else {
                throw LoadError.malformed(name, reason: "segment \(i) p_filesz > p_memsz")
            }
            let (segmentEnd, overflow) = segment.physicalAddress.addingReportingOverflow(segment.memorySize)
            guard !overflow, segmentEnd <= guestRAM else {
                throw LoadError.doesNotFit(name, segment: i, address: GuestAddress(segment.physicalAddress), size: segment.memorySize, guestRAM: guestRAM)
            }
            lowest = min(lowest, segment.physicalAddress)
            end = max(end, segmentEnd)
        }
        guard end > 0 else { throw LoadError.malformed(name, reason: "no PT_LOAD segment") }
        guard entry >= lowest, entry < end else {
            throw LoadError.malformed(name, reason: "entry 0x\(String(entry, radix: 16)) outside the loaded segments")
        }
        return Image(entry: GuestAddress(entry), lowest: GuestAddress(lowest), end: GuestAddress(end), pvhEntry: pvh)
    }

    static func segments(_ raw: UnsafeRawBufferPointer, name: String) throws -> [Segment] {
        let phoff = raw.loadUnaligned(fromByteOffset: 32, as: UInt64.self)
        let phentsize = Int(raw.loadUnaligned(fromByteOffset: 54, as: UInt16.self))
        let phnum = Int(raw.loadUnaligned(fromByteOffset: 56, as: UInt16.self))
        guard phentsize >= 56, phnum > 0, phnum < 256 else {
            throw LoadError.malformed(name, reason: "program header table (entsize \(phentsize), count \(phnum))")
        }
        guard phoff < UInt64(raw.count), UInt64(raw.count) - phoff >= UInt64(phentsize * phnum) else {
            throw LoadError.malformed(name, reason: "program headers beyond end of file")
        }
        return try (0..<phnum).map { i in
            let at = Int(phoff) + i * phentsize
            let segment = Segment(
                type: raw.loadUnaligned(fromByteOffset: at, as: UInt32.self),
                offset: raw.loadUnaligned(fromByteOffset: at + 8, as: UInt64.self),
                physicalAddress: raw.loadUnaligned(fromByteOffset: at + 24, as: UInt64.self),
                fileSize: raw.loadUnaligned(fromByteOffset: at + 32, as: UInt64.self),
                memorySize: raw.loadUnaligned(fromByteOffset: at + 40, as: UInt64.self))
            let (fileEnd, overflow) = segment.offset.addingReportingOverflow(segment.fileSize)
            guard !overflow, fileEnd <= UInt64(raw.count) else {
                throw LoadError.malformed(name, reason: "segment \(i) data beyond end of file")
            }
            return segment
        }
    }

    /// Finds `XEN_ELFNOTE_PHYS32_ENTRY` ("Xen" note type 18) in a PT_NOTE segment.
    static func pvhEntry(_ raw: UnsafeRawBufferPointer, _ segment: Segment) -> GuestAddress? {
        var at = Int(segment.offset)
        let end = Int(segment.offset + segment.fileSize)
        while at + 12 <= end {
            let nameSize = Int(raw.loadUnaligned(fromByteOffset: at, as: UInt32.self))
            let descSize = Int(raw.loadUnaligned(fromByteOffset: at + 4, as: UInt32.self))
            let type = raw.loadUnaligned(fromByteOffset: at + 8, as: UInt32.self)
            let nameAt = at + 12
            let descAt = nameAt + (nameSize + 3) & ~3
            let next = descAt + (descSize + 3) & ~3
            guard nameSize < 4096, descSize < 4096, next <= end else { return nil }
            if type == xenNotePhys32Entry, nameSize == 4, raw[nameAt] == 0x58, raw[nameAt + 1] == 0x65, raw[nameAt + 2] == 0x6e, descSize >= 4 {
                return GuestAddress(UInt64(raw.loadUnaligned(fromByteOffset: descAt, as: UInt32.self)))
            }
            at = next
        }
        return nil
    }
}
