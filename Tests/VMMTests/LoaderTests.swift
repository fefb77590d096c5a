import Testing
@testable import VMM

/// A minimal ELF64 x86_64 image: one PT_LOAD of `code` at `physical`, optional PT_NOTE.
func makeELF(code: [UInt8], physical: UInt64, memorySize: UInt64? = nil, entry: UInt64? = nil, pvhEntry: UInt32? = nil) -> [UInt8] {
    var file = [UInt8](repeating: 0, count: 64)
    file.replaceSubrange(0..<4, with: [0x7f, 0x45, 0x4c, 0x46])
    file[4] = 2; file[5] = 1; file[6] = 1
    func set<T: FixedWidthInteger>(_ value: T, at offset: Int, in bytes: inout [UInt8]) {
        for i in 0..<MemoryLayout<T>.size { bytes[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * i)) }
    }
    let phnum = pvhEntry == nil ? 1 : 2
    set(UInt16(2), at: 16, in: &file)            // ET_EXEC
    set(UInt16(62), at: 18, in: &file)           // EM_X86_64
    set(entry ?? physical, at: 24, in: &file)
    set(UInt64(64), at: 32, in: &file)           // e_phoff
    set(UInt16(56), at: 54, in: &file)
    set(UInt16(phnum), at: 56, in: &file)
    let dataOffset = 64 + 56 * phnum
    var ph = [UInt8](repeating: 0, count: 56 * phnum)
    set(UInt32(1), at: 0, in: &ph)
    set(UInt64(dataOffset), at: 8, in: &ph)
    set(physical, at: 24, in: &ph)
    set(UInt64(code.count), at: 32, in: &ph)
    set(memorySize ?? UInt64(code.count), at: 40, in: &ph)
    var note: [UInt8] = []
    if let pvhEntry {
        note = [4, 0, 0, 0, 4, 0, 0, 0, 18, 0, 0, 0] + Array("Xen\0".utf8) + [0, 0, 0, 0]
        set(pvhEntry, at: 16, in: &note)
        set(UInt32(4), at: 56, in: &ph)
        set(UInt64(dataOffset + code.count), at: 56 + 8, in: &ph)
        set(UInt64(note.count), at: 56 + 32, in: &ph)
    }
    return file + ph + code + note
}

@Suite struct ELFLoaderTests {
    @Test func loadsSegmentsAndZeroesBSS() throws {
        let memory = try GuestMemory(size: 4 << 20)
        try memory.write(bytes: [UInt8](repeating: 0xee, count: 32), at: GuestAddress(0x200000))
        let elf = makeELF(code: [0x90, 0xf4], physical: 0x200000, memorySize: 16, pvhEntry: 0x200001)
        let image = try ELFLoader.load(elf, name: "test", into: memory)
        #expect(image.entry == GuestAddress(0x200000))
        #expect(image.end == GuestAddress(0x200010))
        #expect(image.pvhEntry == GuestAddress(0x200001))
        #expect(try memory.readBytes(at: GuestAddress(0x200000), count: 18) == [0x90, 0xf4] + [UInt8](repeating: 0, count: 14) + [0xee, 0xee])
    }

    @Test func rejectsWhatIsNotAVmlinux() throws {
        #expect(throws: ELFLoader.LoadError.notELF("bzImage")) {
            try ELFLoader.parse(Array("MZ not an elf".utf8) + [UInt8](repeating: 0, count: 64), name: "bzImage", guestRAM: 1 << 20)
        }
        var elf32 = makeELF(code: [0x90], physical: 0x1000)
        elf32[4] = 1
        #expect(throws: ELFLoader.LoadError.unsupported("k", reason: "32-bit ELF; want ELFCLASS64")) {
            try ELFLoader.parse(elf32, name: "k", guestRAM: 1 << 20)
        }
    }

    @Test func rejectsSegmentsBeyondTheFileOrRAM() throws {
        let truncated = Array(makeELF(code: [UInt8](repeating: 0x90, count: 64), physical: 0x1000).dropLast(10))
        #expect(throws: ELFLoader.LoadError.malformed("k", reason: "segment 0 data beyond end of file")) {
            try ELFLoader.parse(truncated, name: "k", guestRAM: 1 << 20)
        }
        #expect(throws: ELFLoader.LoadError.doesNotFit("k", segment: 0, address: GuestAddress(0xff000), size: 0x2000, guestRAM: 1 << 20)) {
            try ELFLoader.parse(makeELF(code: [0x90], physical: 0xff000, memorySize: 0x2000), name: "k", guestRAM: 1 << 20)
        }
        #expect(throws: ELFLoader.LoadError.self) {
            try ELFLoader.parse(makeELF(code: [0x90], physical: UInt64.max - 1, memorySize: 16), name: "k", guestRAM: 1 << 20)
        }
        #expect(throws: ELFLoader.LoadError.malformed("k", reason: "entry 0x5000 outside the loaded segments")) {
            try ELFLoader.parse(makeELF(code: [0x90], physical: 0x1000, entry: 0x5000), name: "k", guestRAM: 1 << 20)
        }
    }
}

@Suite struct BootParamsTests {
    @Test func writesHeaderCommandLineInitrdAndE820() throws {
        let memory = try GuestMemory(size: 64 << 20)
        let initrdAddress = try BootParams.initrdAddress(size: 5000, ramSize: 64 << 20, kernelEnd: GuestAddress(0x2000000))
        #expect(initrdAddress == GuestAddress((64 << 20) - 8192))
        try BootParams(commandLine: "console=hvc0", ramSize: 64 << 20, initrd: (initrdAddress, 5000)).write(to: memory)
        let page = X86Layout.zeroPage
        #expect(try memory.read(UInt16.self, at: page + 0x1fe) == 0xaa55)
        #expect(try memory.read(UInt32.self, at: page + 0x202) == 0x5372_6448)
        #expect(try memory.read(UInt32.self, at: page + 0x228) == UInt32(X86Layout.commandLine.rawValue))
        #expect(try memory.readBytes(at: X86Layout.commandLine, count: 13) == Array("console=hvc0\0".utf8))
        #expect(try memory.read(UInt32.self, at: page + 0x218) == UInt32(initrdAddress.rawValue))
        #expect(try memory.read(UInt32.self, at: page + 0x21c) == 5000)
        #expect(try memory.read(UInt8.self, at: page + 0x1e8) == 2)
        // Second e820 entry: 1 MiB to the end of RAM, usable.
        #expect(try memory.read(UInt64.self, at: page + 0x2d0 + 20) == 0x100000)
        #expect(try memory.read(UInt64.self, at: page + 0x2d0 + 28) == (64 << 20) - 0x100000)
        #expect(try memory.read(UInt32.self, at: page + 0x2d0 + 36) == 1)
    }

    @Test func refusesACommandLineTheKernelWouldTruncate() throws {
        let memory = try GuestMemory(size: 4 << 20)
        let params = BootParams(commandLine: String(repeating: "x", count: 2048), ramSize: 4 << 20)
        #expect(throws: BootParams.BuildError.commandLineTooLong(2048, limit: 2048)) { try params.write(to: memory) }
    }

    @Test func refusesAnInitrdThatOverlapsTheKernel() {
        #expect(throws: BootParams.BuildError.self) {
            try BootParams.initrdAddress(size: 60 << 20, ramSize: 64 << 20, kernelEnd: GuestAddress(0x2000000))
        }
    }
}

@Suite struct MPTableTests {
    @Test(arguments: [1, 2, 8])
    func checksumsAndSignatures(cpus: Int) {
        let bytes = MPTable(cpuCount: cpus).bytes(at: X86Layout.ebda)
        #expect(Array(bytes[0..<4]) == Array("_MP_".utf8))
        #expect(bytes[0..<16].reduce(0, &+) == 0)
        let table = bytes[16...]
        #expect(Array(table.prefix(4)) == Array("PCMP".utf8))
        let length = Int(table[table.startIndex + 4]) | Int(table[table.startIndex + 5]) << 8
        #expect(length == table.count)
        #expect(table.reduce(0, &+) == 0)
        // Processor entries come first, one per CPU, the first one the bootstrap processor.
        let first = table.startIndex + 44
        #expect(table[first] == 0 && table[first + 3] == 3)
        #expect(table[first + 20 * (cpus - 1) + 1] == UInt8(cpus - 1))
    }
}

@Suite struct InitramfsTests {
    @Test func isANewcArchiveCpioCanList() throws {
        let archive = Initramfs.agentImage(agent: Array("#!/bin/true\n".utf8)).archive()
        #expect(archive.count % 4 == 0)
        #expect(Array(archive.prefix(6)) == Array("070701".utf8))
        let listing = try runTool("/usr/bin/cpio", ["-it", "--quiet"], input: archive)
        #expect(listing.split(separator: "\n") == ["dev", "dev/console", "proc", "sys", "run", "tmp", "init"])
        let long = try runTool("/usr/bin/cpio", ["-itv", "--quiet"], input: archive)
        #expect(long.contains("crw-------") && long.contains("5,   1"))
        #expect(long.contains("-rwxr-xr-x") && long.contains("12") && long.contains("init"))
    }
}
