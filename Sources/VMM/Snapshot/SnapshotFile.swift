#if canImport(Glibc)
import Glibc
#endif

/// The snapshot file: one file holds everything a fresh VMM needs to continue a guest.
///
///     0     magic "SMRUNCSN"                8 bytes
///     8     format version                  u32
///     12    header length (fixed + table)   u32
///     16    VMM version, NUL-padded         32 bytes
///     48    kernel identity (SHA-256)       32 bytes
///     80    agent identity (SHA-256)        32 bytes
///     112   vCPU count                      u32
///     116   section count                   u32
///     120   guest RAM size                  u64
///     128   guest RAM offset in the file    u64 (page-aligned)
///     136   file size                       u64
///     144   SHA-256 of [0, RAM offset) with these 32 bytes zero
///     176   zero up to 256
///     256   section table: kind u32, index u32, offset u64, length u64 (24 bytes each)
///           sections (8-byte aligned): the machine state, one per vCPU, then the
///           devices (virtio-mmio transports, queues, device state; format 2)
///           zero padding to the RAM offset
///     RAM   guest RAM, mapped MAP_PRIVATE on restore
///
/// All integers little-endian. The checksum covers header and state, not guest RAM
/// (hashing hundreds of MiB would cost the restore its speed): RAM is bounded by
/// the size checks, and the file is trusted (0600 in a root-owned cache).
public enum SnapshotFile {
    static let magic: [UInt8] = Array("SMRUNCSN".utf8)
    public static let formatVersion: UInt32 = 2
    static let fixedHeaderBytes = 256
    static let sectionEntryBytes = 24
    static let checksumOffset = 144
    static let maximumSectionBytes = 1 << 20
    /// Header and state together stay under this (the state is read whole).
    static let maximumStateBytes: UInt64 = 64 << 20
    static let maximumMemoryBytes: UInt64 = 1 << 40
    static let pageBytes: UInt64 = 4096

    enum SectionKind: UInt32 {
        case machine = 1
        case vcpu = 2
        case devices = 3
    }

    /// Writes a snapshot to `path` (mode 0600) through a temporary file renamed into
    /// place, so a reader never sees a partial snapshot. Pages of guest RAM that are
    /// all zero are left as holes.
    public static func write(to path: String, identity: SnapshotIdentity, machine: MachineState,
                             vcpus: [VCPUState], devices: DeviceStates = DeviceStates(),
                             memory: GuestMemory) throws(SnapshotError) {
        try identity.validate()
        guard (1...MachineConfiguration.maximumVCPUs).contains(vcpus.count) else {
            throw .invalidArgument("\(vcpus.count) vCPUs: want 1 to \(MachineConfiguration.maximumVCPUs)")
        }

        var sections: [(kind: SectionKind, index: UInt32, bytes: [UInt8])] = []
        var writer = SnapshotWriter()
        machine.encode(into: &writer)
        sections.append((.machine, 0, writer.bytes))
        for (i, vcpu) in vcpus.enumerated() {
            var writer = SnapshotWriter()
            vcpu.encode(into: &writer)
            sections.append((.vcpu, UInt32(i), writer.bytes))
        }
        var deviceWriter = SnapshotWriter()
        devices.encode(into: &deviceWriter)
        sections.append((.devices, 0, deviceWriter.bytes))
        let headerLength = fixedHeaderBytes + sections.count * sectionEntryBytes
        var offset = headerLength
        var table: [(kind: UInt32, index: UInt32, offset: UInt64, length: UInt64)] = []
        for section in sections {
            guard section.bytes.count <= maximumSectionBytes else {
                throw .invalidArgument("section \(section.kind) \(section.index) is \(section.bytes.count) bytes, at most \(maximumSectionBytes)")
            }
            table.append((section.kind.rawValue, section.index, UInt64(offset), UInt64(section.bytes.count)))
            offset = (offset + section.bytes.count + 7) & ~7
        }
        let memoryOffset = (UInt64(offset) + pageBytes - 1) & ~(pageBytes - 1)
        let fileSize = memoryOffset + memory.size

        var state = [UInt8](repeating: 0, count: Int(memoryOffset))
        func put<T: FixedWidthInteger>(_ value: T, at position: Int) {
            withUnsafeBytes(of: value.littleEndian) { bytes in
                for (i, byte) in bytes.enumerated() { state[position + i] = byte }
            }
        }
        func put(bytes: [UInt8], at position: Int) {
            for (i, byte) in bytes.enumerated() { state[position + i] = byte }
        }
        put(bytes: magic, at: 0)
        put(formatVersion, at: 8)
        put(UInt32(headerLength), at: 12)
        put(bytes: Array(identity.vmmVersion.utf8), at: 16)
        put(bytes: identity.kernel, at: 48)
        put(bytes: identity.agent, at: 80)
        put(UInt32(vcpus.count), at: 112)
        put(UInt32(sections.count), at: 116)
        put(memory.size, at: 120)
        put(memoryOffset, at: 128)
        put(fileSize, at: 136)
        for (i, entry) in table.enumerated() {
            let at = fixedHeaderBytes + i * sectionEntryBytes
            put(entry.kind, at: at)
            put(entry.index, at: at + 4)
            put(entry.offset, at: at + 8)
            put(entry.length, at: at + 16)
            put(bytes: sections[i].bytes, at: Int(entry.offset))
        }
        put(bytes: SHA256.hash(state), at: checksumOffset)

        do {
            try writeFile(path, state: state, memory: memory, memoryOffset: memoryOffset, fileSize: fileSize)
        } catch {
            throw .io(error)
        }
    }

    private static func writeFile(_ path: String, state: [UInt8], memory: GuestMemory,
                                  memoryOffset: UInt64, fileSize: UInt64) throws(SystemCallError) {
        let temporary = "\(path).tmp.\(getpid())"
        unlink(temporary)   // a leftover of a crashed writer with our pid
        let file = try OwnedDescriptor.open(temporary, flags: O_WRONLY | O_CREAT | O_EXCL, mode: 0o600)
        var renamed = false
        defer { if !renamed { unlink(temporary) } }
        try check("fchmod", temporary) { fchmod(file.rawValue, 0o600) }   // whatever the umask
        try check("ftruncate", temporary) { ftruncate(file.rawValue, off_t(fileSize)) }
        try state.withUnsafeBytes { bytes in
            Result { () throws(SystemCallError) in try writeAll(file, bytes, at: 0, temporary) }
        }.get()
        // Guest RAM in 64 KiB chunks; all-zero chunks stay holes (never-touched RAM reads as zero).
        let chunk = 64 << 10
        var address: UInt64 = 0
        while address < memory.size {
            let count = Int(min(UInt64(chunk), memory.size - address))
            let offset = memoryOffset + address
            // In bounds by construction (address + count <= memory.size).
            let written = try? memory.withBytes(at: GuestAddress(address), count: count) { bytes in
                Result { () throws(SystemCallError) in
                    if !isZero(UnsafeRawBufferPointer(bytes)) { try writeAll(file, UnsafeRawBufferPointer(bytes), at: offset, temporary) }
                }
            }
            try written?.get()
            address += UInt64(count)
        }
        try check("fsync", temporary) { fsync(file.rawValue) }
        try check("rename", "\(temporary) to \(path)") { rename(temporary, path) }
        renamed = true
        // The rename itself is durable once the directory is synced.
        let directory = path.contains("/") ? String(path[..<(path.lastIndex(of: "/") ?? path.endIndex)]) : "."
        if let dir = try? OwnedDescriptor.open(directory.isEmpty ? "/" : directory, flags: O_RDONLY | O_DIRECTORY) {
            _ = fsync(dir.rawValue)
        }
    }

    private static func isZero(_ bytes: UnsafeRawBufferPointer) -> Bool {
        let words = bytes.count / 8
        for i in 0..<words where bytes.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self) != 0 { return false }
        for i in (words * 8)..<bytes.count where bytes[i] != 0 { return false }
        return true
    }

    private static func writeAll(_ file: OwnedDescriptor, _ bytes: UnsafeRawBufferPointer, at offset: UInt64, _ path: String) throws(SystemCallError) {
        var done = 0
        while done < bytes.count {
            let n = try checkSize("pwrite", path) {
                pwrite(file.rawValue, bytes.baseAddress! + done, bytes.count - done, off_t(offset) + off_t(done))
            }
            done += n
        }
    }

    static func readExactly(_ file: OwnedDescriptor, count: Int, at offset: UInt64, _ path: String) throws(SnapshotError) -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let read = buffer.withUnsafeMutableBytes { raw in
                Result { () throws(SystemCallError) -> Int in
                    try checkSize("pread", path) { pread(file.rawValue, raw.baseAddress! + done, count - done, off_t(offset) + off_t(done)) }
                }
            }
            let n: Int
            switch read {
            case .success(let count): n = count
            case .failure(let error): throw .io(error)
            }
            if n == 0 { throw .truncated(path: path, size: offset + UInt64(done), expected: offset + UInt64(count)) }
            done += n
        }
        return buffer
    }
}
