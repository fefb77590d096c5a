import Foundation
import Testing
import CKVM
@testable import VMM

@Suite struct SnapshotFileTests {
    typealias F = SnapshotFixtures

    @Test func sha256MatchesTheStandardVectors() {
        func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }
        #expect(hex(SHA256.hash([UInt8]())) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(hex(SHA256.hash(Array("abc".utf8))) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        let long = Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)
        #expect(hex(SHA256.hash(long)) == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        // Fed in odd pieces, through both update paths.
        let million = [UInt8](repeating: 0x61, count: 1_000_000)
        var hasher = SHA256()
        hasher.update(million[0..<7])
        million[7..<500_003].withUnsafeBytes { hasher.update($0) }
        hasher.update(million[500_003...])
        #expect(hex(hasher.finalize()) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    @Test func roundTripKeepsStateAndMemory() throws {
        let directory = try F.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/guest.snap"
        try F.writeSample(to: path)

        var st = stat()
        #expect(stat(path, &st) == 0)
        #expect(st.st_mode & 0o777 == 0o600)
        #expect(!FileManager.default.fileExists(atPath: path + ".tmp.\(getpid())"))

        let snapshot = try Snapshot.load(path, expecting: F.identity, vcpuCount: 1, memorySize: 1 << 20)
        #expect(snapshot.header.identity == F.identity)
        #expect(snapshot.header.memoryOffset % 4096 == 0)
        #expect(UInt64(st.st_size) == snapshot.header.memoryOffset + (1 << 20))
        let (machine, vcpu) = F.sampleState()
        #expect(snapshot.machine.clock.clock == machine.clock.clock)
        #expect(snapshot.machine.picSlave == machine.picSlave)
        #expect(snapshot.machine.pit != nil)
        let restored = try #require(snapshot.vcpus.first)
        #expect(restored.regs.rip == vcpu.regs.rip && restored.regs.rbx == 7)
        #expect(restored.sregs.cr3 == 0x9000)
        #expect(restored.msrs == vcpu.msrs)
        #expect(restored.tsc == 999)
        #expect(restored.cpuid.count == 1 && restored.cpuid[0].ecx == 0x8000_0000)
        #expect(restored.tscKHz == 2_596_132)
        guard case .xsave(let area) = restored.fpu else { Issue.record("FPU kind lost"); return }
        #expect(area.count == 4096 && area[160] == 0xab)

        let memory = try snapshot.mapMemory()
        #expect(try memory.read(UInt64.self, at: GuestAddress(0x1000)) == 0x1122_3344_5566_7788)
        #expect(try memory.read(UInt64.self, at: GuestAddress(0x80000)) == 0)
    }

    /// The VMM version (16), the section table (256) and the middle of the vCPU section.
    @Test(arguments: [16, 20, 50, 90, 260, 700, 2000])
    func aFlippedHeaderOrStateByteIsRefused(offset: Int) throws {
        let directory = try F.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/guest.snap"
        try F.writeSample(to: path)
        try F.flipByte(path, at: offset)
        #expect {
            try Snapshot.load(path, expecting: F.identity)
        } throws: { error in
            guard case .checksumMismatch = error as? SnapshotError else { return false }
            return true
        }
    }

    @Test(arguments: [8, 12, 112, 116, 120, 128, 136])
    func aFlippedSizeOrCountFieldIsRefused(offset: Int) throws {
        let directory = try F.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/guest.snap"
        try F.writeSample(to: path)
        try F.flipByte(path, at: offset)
        #expect(throws: SnapshotError.self) { try Snapshot.load(path, expecting: F.identity) }
    }

    @Test func aWrongVMMVersionIsRefusedNamingBoth() throws {
        let directory = try F.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/guest.snap"
        try F.writeSample(to: path)
        var expected = F.identity
        expected.vmmVersion = "0.2.0"
        #expect {
            try Snapshot.load(path, expecting: expected)
        } throws: { error in
            "\(error)" == "snapshot was made by VMM 0.1.0, this is 0.2.0"
        }
    }

    @Test func aWrongKernelOrAgentIsRefused() throws {
        let directory = try F.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/guest.snap"
        try F.writeSample(to: path)
        var otherKernel = F.identity
        otherKernel.kernel = SHA256.hash(Array("another kernel".utf8))
        #expect {
            try Snapshot.load(path, expecting: otherKernel)
        } throws: { error in
            let text = "\(error)"
            return text.hasPrefix("snapshot was made with kernel sha256:") && text.contains(", this kernel is sha256:")
        }
        var otherAgent = F.identity
        otherAgent.agent = SHA256.hash(Array("another agent".utf8))
        #expect {
            try Snapshot.load(path, expecting: otherAgent)
        } throws: { error in
            guard case .agentMismatch = error as? SnapshotError else { return false }
            return "\(error)".hasPrefix("snapshot was made with agent sha256:")
        }
        #expect(throws: SnapshotError.self) { try Snapshot.load(path, expecting: F.identity, vcpuCount: 2) }
        #expect(throws: SnapshotError.self) { try Snapshot.load(path, expecting: F.identity, memorySize: 2 << 20) }
    }

    @Test(arguments: [0, 7, 100, 300, 4096, 4096 + (1 << 20) - 1])
    func aTruncatedFileIsRefused(length: Int) throws {
        let directory = try F.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/guest.snap"
        try F.writeSample(to: path)
        #expect(truncate(path, off_t(length)) == 0)
        #expect {
            try Snapshot.load(path, expecting: F.identity)
        } throws: { error in
            switch error as? SnapshotError {
            case .truncated, .notASnapshot: return true
            default: return false
            }
        }
    }

    @Test func aFileThatIsNoSnapshotIsRefused() throws {
        let directory = try F.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/vmlinux"
        try Data(repeating: 0x7f, count: 8192).write(to: URL(fileURLWithPath: path))
        #expect {
            try Snapshot.load(path, expecting: F.identity)
        } throws: { error in
            guard case .notASnapshot = error as? SnapshotError else { return false }
            return true
        }
    }

    @Test func identitiesThatDoNotFitAreRefusedOnWrite() throws {
        let directory = try F.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var long = F.identity
        long.vmmVersion = String(repeating: "9", count: 33)
        #expect(throws: SnapshotError.self) { try F.writeSample(to: directory + "/a", identity: long) }
        var short = F.identity
        short.kernel = [1, 2, 3]
        #expect(throws: SnapshotError.self) { try F.writeSample(to: directory + "/b", identity: short) }
        #expect(!FileManager.default.fileExists(atPath: directory + "/a"))
    }
}
