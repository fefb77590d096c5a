#if canImport(Glibc)
import Glibc
#endif

/// A snapshot file loaded and checked: its header, machine and vCPU states, and the
/// open file its guest RAM is mapped from (the very file that was checked).
public final class Snapshot: Sendable {
    public let path: String
    public let header: SnapshotHeader
    public let machine: MachineState
    public let vcpus: [VCPUState]
    /// The virtio devices (format 2).
    public let devices: DeviceStates
    private let file: OwnedDescriptor

    private init(path: String, header: SnapshotHeader, machine: MachineState, vcpus: [VCPUState], devices: DeviceStates,
                 file: OwnedDescriptor) {
        self.devices = devices
        self.path = path
        self.header = header
        self.machine = machine
        self.vcpus = vcpus
        self.file = file
    }

    /// Opens and checks `path`: magic, format version, every bound, the file size,
    /// the checksum, then the identity (VMM version, kernel, agent) against `expected`
    /// and, when given, the vCPU count and RAM size. Throws naming the first mismatch.
    public static func load(_ path: String, expecting expected: SnapshotIdentity,
                            vcpuCount: Int? = nil, memorySize: UInt64? = nil) throws(SnapshotError) -> Snapshot {
        let file: OwnedDescriptor
        do { file = try OwnedDescriptor.open(path, flags: O_RDONLY) } catch { throw .io(error) }
        return try load(file, path: path, expecting: expected, vcpuCount: vcpuCount, memorySize: memorySize)
    }

    /// `load` of a snapshot file the caller opened (and checked: its owner, its mode,
    /// not a symlink); `path` names it in errors. The RAM is mapped from this fd.
    public static func load(_ file: OwnedDescriptor, path: String, expecting expected: SnapshotIdentity,
                            vcpuCount: Int? = nil, memorySize: UInt64? = nil) throws(SnapshotError) -> Snapshot {
        var st = stat()
        guard fstat(file.rawValue, &st) == 0 else {
            throw .io(SystemCallError(call: "fstat", argument: path, errno: .init(rawValue: errno)))
        }
        guard st.st_mode & S_IFMT == S_IFREG else { throw .notASnapshot(path: path) }
        let size = UInt64(st.st_size)
        typealias F = SnapshotFile

        let fixed = try F.readExactly(file, count: Int(min(size, UInt64(F.fixedHeaderBytes))), at: 0, path)
        guard fixed.count >= F.magic.count, Array(fixed.prefix(F.magic.count)) == F.magic else { throw .notASnapshot(path: path) }
        guard fixed.count == F.fixedHeaderBytes else { throw .truncated(path: path, size: size, expected: UInt64(F.fixedHeaderBytes)) }
        var fields = SnapshotReader(Array(fixed[8..<F.fixedHeaderBytes]), what: "header")
        let format = try fields.u32()
        guard format == F.formatVersion else { throw .unsupportedFormat(path: path, found: format, supported: F.formatVersion) }
        let headerLength = try fields.u32()
        let versionBytes = Array(fixed[16..<48])
        let kernel = Array(fixed[48..<80])
        let agent = Array(fixed[80..<112])
        var counts = SnapshotReader(Array(fixed[112..<144]), what: "header")
        let vcpuTotal = Int(try counts.u32())
        let sectionCount = Int(try counts.u32())
        let ramSize = try counts.u64()
        let ramOffset = try counts.u64()
        let fileSize = try counts.u64()

        guard (1...MachineConfiguration.maximumVCPUs).contains(vcpuTotal) else {
            throw .malformed("\(vcpuTotal) vCPUs, at most \(MachineConfiguration.maximumVCPUs)")
        }
        guard sectionCount == 2 + vcpuTotal else { throw .malformed("\(sectionCount) sections for \(vcpuTotal) vCPUs") }
        guard Int(headerLength) == F.fixedHeaderBytes + sectionCount * F.sectionEntryBytes else {
            throw .malformed("header length \(headerLength) for \(sectionCount) sections")
        }
        guard ramSize > 0, ramSize % F.pageBytes == 0, ramSize <= F.maximumMemoryBytes else { throw .malformed("guest RAM of \(ramSize) bytes") }
        guard ramOffset % F.pageBytes == 0, ramOffset >= UInt64(headerLength), ramOffset <= F.maximumStateBytes else {
            throw .malformed("guest RAM at offset \(ramOffset)")
        }
        guard fileSize == ramOffset + ramSize else { throw .malformed("file size \(fileSize) is not RAM offset \(ramOffset) + RAM size \(ramSize)") }
        guard size == fileSize else { throw .truncated(path: path, size: size, expected: fileSize) }

        var state = try F.readExactly(file, count: Int(ramOffset), at: 0, path)
        let stored = Array(state[F.checksumOffset..<F.checksumOffset + 32])
        for i in F.checksumOffset..<F.checksumOffset + 32 { state[i] = 0 }
        guard SHA256.hash(state) == stored else { throw .checksumMismatch(path: path) }

        let version = String(decoding: versionBytes.prefix { $0 != 0 }, as: UTF8.self)
        guard version == expected.vmmVersion else { throw .vmmMismatch(found: version, expected: expected.vmmVersion) }
        guard kernel == expected.kernel else {
            throw .kernelMismatch(found: SnapshotIdentity.hex(kernel), expected: SnapshotIdentity.hex(expected.kernel))
        }
        guard agent == expected.agent else {
            throw .agentMismatch(found: SnapshotIdentity.hex(agent), expected: SnapshotIdentity.hex(expected.agent))
        }
        if let vcpuCount, vcpuCount != vcpuTotal { throw .vcpuCountMismatch(found: vcpuTotal, expected: vcpuCount) }
        if let memorySize, memorySize != ramSize { throw .memorySizeMismatch(found: ramSize, expected: memorySize) }

        var machine: MachineState?
        var devices: DeviceStates?
        var vcpus = [VCPUState?](repeating: nil, count: vcpuTotal)
        var table = SnapshotReader(Array(state[F.fixedHeaderBytes..<Int(headerLength)]), what: "section table")
        for _ in 0..<sectionCount {
            let kind = try table.u32(), index = try table.u32(), offset = try table.u64(), length = try table.u64()
            guard offset >= UInt64(headerLength), length <= UInt64(F.maximumSectionBytes), offset <= ramOffset, length <= ramOffset - offset else {
                throw .malformed("section \(kind)/\(index) at \(offset) of \(length) bytes lies outside the state")
            }
            let bytes = Array(state[Int(offset)..<Int(offset + length)])
            switch F.SectionKind(rawValue: kind) {
            case .machine:
                guard machine == nil, index == 0 else { throw .malformed("machine section repeated") }
                var reader = SnapshotReader(bytes, what: "machine state")
                machine = try MachineState.decode(from: &reader)
                try reader.finish()
            case .vcpu:
                guard Int(index) < vcpuTotal, vcpus[Int(index)] == nil else { throw .malformed("vCPU section \(index) repeated or out of range") }
                var reader = SnapshotReader(bytes, what: "vCPU \(index) state")
                vcpus[Int(index)] = try VCPUState.decode(from: &reader)
                try reader.finish()
            case .devices:
                guard devices == nil, index == 0 else { throw .malformed("device section repeated") }
                var reader = SnapshotReader(bytes, what: "device state")
                devices = try DeviceStates.decode(from: &reader)
                try reader.finish()
            case nil:
                throw .malformed("unknown section kind \(kind)")
            }
        }
        guard let machine else { throw .malformed("no machine section") }
        guard let devices else { throw .malformed("no device section") }
        let states = vcpus.compactMap { $0 }
        guard states.count == vcpuTotal else { throw .malformed("\(vcpuTotal - states.count) vCPU sections missing") }
        let header = SnapshotHeader(formatVersion: format, identity: SnapshotIdentity(vmmVersion: version, kernel: kernel, agent: agent),
                                    vcpuCount: vcpuTotal, memorySize: ramSize, memoryOffset: ramOffset)
        return Snapshot(path: path, header: header, machine: machine, vcpus: states, devices: devices, file: file)
    }

    /// Guest RAM, mapped copy-on-write from the file: restored VMs share its pages.
    public func mapMemory() throws(SnapshotError) -> GuestMemory {
        do { return try GuestMemory(privateMappingOf: file, offset: header.memoryOffset, size: header.memorySize) } catch { throw .memory(error) }
    }

    /// Restores the machine state into `vm`, then every vCPU (in order) into `vcpus`.
    /// `vm` needs the same in-kernel devices as the snapshotted VM (irqchip, PIT if
    /// it had one) and the mapped RAM registered; the vCPUs must be fresh.
    /// Every vCPU gets the boot vCPU's TSC, so all share one TSC offset (see `VCPUState.restore`).
    public func restore(into vm: KVMVirtualMachine, vcpus targets: [KVMVCPU], system: KVMSystem) throws(SnapshotError) {
        guard targets.count == vcpus.count else { throw .vcpuCountMismatch(found: vcpus.count, expected: targets.count) }
        try machine.restore(to: vm)
        let tsc = vcpus.first?.tsc
        for (state, vcpu) in zip(vcpus, targets) {
            try state.restore(to: vcpu, system: system, tsc: tsc)
        }
    }
}
