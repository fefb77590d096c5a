// Snapshot files (Sources/VMM/Snapshot: Snapshot.load's header and section checks,
// SnapshotReader and the machine, vCPU and device state decoders). Byte 0 is a
// mode; the rest is the file's state part (header, section table, sections).
// Mode bit 0 makes the file pass the checksum (so mutations reach the decoders):
// the state is padded to the RAM offset the header names (up to 64 KiB), its
// SHA-256 filled in, and the file sized as the header says (sparse). The expected
// identity is the file's own, so only the format is under test. Oracle: a loaded
// snapshot agrees with its header.
#if canImport(Glibc)
import Glibc
#endif
import CKVM
@testable import VMM

nonisolated(unsafe) var snapshotPath = ""

@_cdecl("LLVMFuzzerInitialize")
public func fuzzInitialize(_ argc: UnsafeMutableRawPointer?, _ argv: UnsafeMutableRawPointer?) -> CInt {
    writeSeedsIfAsked(snapshotSeeds)
    snapshotPath = makeTemporaryDirectory("sm-fuzz-snapshot") + "/snapshot"
    atexit {
        unlink(snapshotPath)
        rmdir(String(snapshotPath.dropLast("/snapshot".count)))
    }
    return 0
}

func le<T: FixedWidthInteger>(_ bytes: [UInt8], _ at: Int, _: T.Type) -> T {
    (0..<MemoryLayout<T>.size).reduce(T(0)) { $0 | T(bytes[at + $1]) << (8 * $1) }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var input = FuzzInput(data, size)
    let mode = input.u8()
    var file = input.rest()
    var fileSize = UInt64(file.count)
    if mode & 1 != 0, file.count >= SnapshotFile.fixedHeaderBytes {
        let ramOffset = le(file, 128, UInt64.self)
        if ramOffset <= 64 << 10, ramOffset >= UInt64(SnapshotFile.checksumOffset + 32) {
            if Int(ramOffset) > file.count { file += [UInt8](repeating: 0, count: Int(ramOffset) - file.count) }
            var state = Array(file.prefix(Int(ramOffset)))
            for i in 0..<32 { state[SnapshotFile.checksumOffset + i] = 0 }
            let digest = SHA256.hash(state)
            for i in 0..<32 { file[SnapshotFile.checksumOffset + i] = digest[i] }
            fileSize = max(le(file, 136, UInt64.self), UInt64(file.count))
            if fileSize > 1 << 40 { fileSize = UInt64(file.count) }
        }
    }
    let fd = open(snapshotPath, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
    guard fd >= 0 else { fuzzFailure("open \(snapshotPath): errno \(errno)") }
    let written = file.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
    guard written == file.count, ftruncate(fd, off_t(fileSize)) == 0 else { fuzzFailure("write \(snapshotPath): errno \(errno)") }
    // The identity the file claims, so the checks after the checksum are reached.
    var identity = SnapshotIdentity(vmmVersion: "", kernel: [UInt8](repeating: 0, count: 32), agent: [UInt8](repeating: 0, count: 32))
    if file.count >= 112 {
        identity.vmmVersion = String(decoding: file[16..<48].prefix { $0 != 0 }, as: UTF8.self)
        identity.kernel = Array(file[48..<80])
        identity.agent = Array(file[80..<112])
    }
    let snapshot: Snapshot
    do {
        snapshot = try Snapshot.load(OwnedDescriptor(adopting: fd), path: snapshotPath, expecting: identity)
    } catch {
        _ = error.description
        return 0
    }
    let header = snapshot.header
    guard header.vcpuCount == snapshot.vcpus.count, (1...MachineConfiguration.maximumVCPUs).contains(header.vcpuCount),
          header.memorySize > 0, header.memorySize % 4096 == 0, header.memoryOffset % 4096 == 0,
          header.memoryOffset + header.memorySize == fileSize else {
        fuzzFailure("loaded a snapshot whose header disagrees: \(header)")
    }
    // What was decoded encodes again (the decoders and encoders agree).
    var writer = SnapshotWriter()
    snapshot.devices.encode(into: &writer)
    var reader = SnapshotReader(writer.bytes, what: "re-encoded devices")
    do {
        _ = try DeviceStates.decode(from: &reader)
        try reader.finish()
    } catch { fuzzFailure("re-encoded device states do not decode: \(error)") }
    return 0
}

/// Snapshots written by SnapshotFile.write (states as the VMM tests make them,
/// without KVM), 4 KiB of RAM, cut at the RAM offset.
func snapshotSeeds() -> [(name: String, bytes: [UInt8])] {
    let identity = SnapshotIdentity(vmmVersion: "0.1.0", kernel: SHA256.hash(Array("kernel image".utf8)),
                                    agent: SHA256.hash(Array("agent image".utf8)))
    var clock = kvm_clock_data()
    clock.clock = 123_456_789
    var irqchip = [UInt8](repeating: 0, count: MemoryLayout<kvm_irqchip>.size)
    irqchip[8] = 0x5a
    let machine = MachineState(picMaster: irqchip, picSlave: irqchip, ioapic: irqchip, pit: kvm_pit_state2(), clock: clock)
    var regs = kvm_regs()
    regs.rip = 0x10_0003
    var cpuid = kvm_cpuid_entry2()
    cpuid.function = 1
    func vcpu(_ xsave: Int) -> VCPUState {
        VCPUState(mpState: kvm_mp_state(), regs: regs, sregs: kvm_sregs(), fpu: .xsave([UInt8](repeating: 0, count: xsave)),
                  xcrs: kvm_xcrs(), debugRegs: kvm_debugregs(), lapic: kvm_lapic_state(),
                  msrs: [.init(index: 0x10, value: 999)], events: kvm_vcpu_events(), cpuid: [cpuid], tscKHz: 2_596_132)
    }
    let directory = makeTemporaryDirectory("sm-fuzz-seeds")
    defer { rmdir(directory) }
    func written(_ vcpus: [VCPUState]) -> [UInt8] {
        let path = directory + "/snapshot"
        defer { unlink(path) }
        do {
            let memory = try GuestMemory(size: 4096)
            try SnapshotFile.write(to: path, identity: identity, machine: machine, vcpus: vcpus, memory: memory)
            let file = try OwnedDescriptor.open(path, flags: O_RDONLY)
            let head = try SnapshotFile.readExactly(file, count: 256, at: 0, path)
            return try SnapshotFile.readExactly(file, count: Int(le(head, 128, UInt64.self)), at: 0, path)
        } catch { fuzzFailure("write a seed snapshot: \(error)") }
    }
    let one = written([vcpu(1024)])
    let two = written([vcpu(1024), vcpu(1024)])
    var badVersion = one
    badVersion[8] = 3
    return [
        ("one-vcpu", [1] + one),
        ("two-vcpus", [1] + two),
        ("checksum-as-written", [0] + one),
        ("format-3", [1] + badVersion),
        ("header-only", [1] + Array(one.prefix(256))),
        ("not-a-snapshot", [1] + Array("#!/bin/sh\n".utf8)),
    ]
}
