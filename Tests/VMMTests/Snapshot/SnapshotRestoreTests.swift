import Foundation
import Testing
import CKVM
@testable import VMM

/// Live snapshots of a tiny 64-bit guest (the bare-vCPU harness): stopped mid-run,
/// captured into a file, restored into fresh VMs whose RAM is the file mapped
/// MAP_PRIVATE, continued.
@Suite(.serialized) struct SnapshotRestoreTests {
    typealias F = SnapshotFixtures
    static let counter = GuestAddress(0x20_0000)
    static let marker = GuestAddress(0x30_0000)
    static let iterations: UInt32 = 20

    /// rbx counts 1...20; the sum of the counts is kept at `counter` in RAM; each
    /// step writes the sum to port 0x10; at the end `out 0x11` and spin.
    static let program: [UInt8] = [
        0x48, 0x31, 0xdb,                                   // xor rbx, rbx
        0x48, 0xff, 0xc3,                                   // loop: inc rbx
        0x48, 0x8b, 0x04, 0x25, 0x00, 0x00, 0x20, 0x00,     // mov rax, [0x200000]
        0x48, 0x01, 0xd8,                                   // add rax, rbx
        0x48, 0x89, 0x04, 0x25, 0x00, 0x00, 0x20, 0x00,     // mov [0x200000], rax
        0xe7, 0x10,                                         // out 0x10, eax
        0x48, 0x83, 0xfb, UInt8(iterations),                // cmp rbx, 20
        0x75, 0xe2,                                         // jne loop
        0xb0, 0xff, 0xe6, 0x11,                             // mov al, 0xff; out 0x11, al
        0xeb, 0xfe,                                         // jmp $
    ]

    static var expectedOutputs: [UInt32] { (1...iterations).map { $0 * ($0 + 1) / 2 } }

    /// Runs `vcpu` until `out 0x11` (nil) or until `stopAfter` outputs; returns the outputs.
    static func run(_ vcpu: KVMVCPU, stopAfter: Int = .max) throws -> [UInt32] {
        var outputs: [UInt32] = []
        for _ in 0..<200 {
            switch try vcpu.runOnce() {
            case .io(port: 0x10, size: 4, count: 1, isWrite: true, let value, _):
                outputs.append(UInt32(truncatingIfNeeded: value))
                if outputs.count == stopAfter { return outputs }
            case .io(port: 0x11, _, _, true, _, _):
                return outputs
            case .interrupted:
                continue
            case let exit:
                Issue.record("unexpected exit \(exit) after outputs \(outputs)")
                return outputs
            }
        }
        Issue.record("no end after 200 exits")
        return outputs
    }

    /// A fresh VM (irqchip, no PIT, as the harness makes) restored from `snapshot`.
    struct RestoredMachine {
        let vm: KVMVirtualMachine
        let memory: GuestMemory
        let vcpu: KVMVCPU

        init(_ snapshot: Snapshot) throws {
            let kvm = try KVMSystem()
            vm = try kvm.createVM()
            try vm.setTSSAddress(X86Layout.tss)
            try vm.createIRQChip()
            memory = try snapshot.mapMemory()
            try vm.setUserMemoryRegion(slot: 0, guestAddress: 0, size: memory.size, hostAddress: memory.hostAddress)
            vcpu = try vm.createVCPU(index: 0)
            try snapshot.restore(into: vm, vcpus: [vcpu], system: kvm)
        }
    }

    /// Runs the program for 7 outputs, sets recognisable MSR and debug-register
    /// values, and snapshots it into `path`.
    static func snapshotMidway(to path: String) throws -> (outputs: [UInt32], state: VCPUState, clock: UInt64) {
        let machine = try BareVCPUTests.BareMachine(code: program)
        let before = try run(machine.vcpu, stopAfter: 7)
        try machine.vcpu.setMSRs([(0xc000_0102, 0x7ead_beef_0000)])     // KERNEL_GS_BASE
        var debug = try machine.vcpu.debugRegisters()
        debug.db.0 = 0x12_3000
        try machine.vcpu.setDebugRegisters(debug)
        let kvm = try KVMSystem()
        let vcpuState = try VCPUState.capture(machine.vcpu, system: kvm)
        let machineState = try MachineState.capture(machine.vm)
        try SnapshotFile.write(to: path, identity: F.identity, machine: machineState, vcpus: [vcpuState], memory: machine.memory)
        return (before, vcpuState, machineState.clock.clock)
    }

    @Test func theUninterruptedProgramProducesTheTriangularNumbers() throws {
        try requireKVM()
        let machine = try BareVCPUTests.BareMachine(code: Self.program)
        #expect(try Self.run(machine.vcpu) == Self.expectedOutputs)
        #expect(try machine.memory.read(UInt32.self, at: Self.counter) == Self.expectedOutputs.last)
    }

    @Test func aRestoredGuestContinuesExactlyWhereTheSnapshotStopped() throws {
        try requireKVM()
        let directory = try F.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/guest.snap"
        let (before, saved, savedClock) = try Self.snapshotMidway(to: path)
        #expect(before == Array(Self.expectedOutputs.prefix(7)))

        let snapshot = try Snapshot.load(path, expecting: F.identity, vcpuCount: 1, memorySize: 4 << 20)
        let restored = try RestoredMachine(snapshot)
        // The state KVM now holds is the snapshot's.
        let regs = try restored.vcpu.registers()
        #expect(regs.rip == saved.regs.rip && regs.rbx == 7)
        #expect(try restored.vcpu.specialRegisters().cr3 == saved.sregs.cr3)
        #expect(try restored.vcpu.msrs([0xc000_0102]).first?.value == 0x7ead_beef_0000)
        #expect(try restored.vcpu.debugRegisters().db.0 == 0x12_3000)
        // kvmclock continues from the snapshot's value (not from this VM's creation, not wall time).
        let clock = try restored.vm.clock().clock
        #expect(clock >= savedClock && clock < savedClock + 5_000_000_000)
        // The guest carries on: exactly the outputs the uninterrupted run has left.
        #expect(try Self.run(restored.vcpu) == Array(Self.expectedOutputs.dropFirst(7)))
        #expect(try restored.memory.read(UInt32.self, at: Self.counter) == Self.expectedOutputs.last)
    }

    @Test func twoGuestsRestoredFromOneFileDoNotSeeEachOthersWrites() throws {
        try requireKVM()
        let directory = try F.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/guest.snap"
        _ = try Self.snapshotMidway(to: path)
        let snapshot = try Snapshot.load(path, expecting: F.identity)
        let first = try RestoredMachine(snapshot)
        let second = try RestoredMachine(snapshot)
        let atSnapshot = try second.memory.read(UInt32.self, at: Self.counter)
        #expect(atSnapshot == Self.expectedOutputs[6])

        // The first guest runs to the end (writing its counter) and the host writes into its RAM.
        #expect(try Self.run(first.vcpu) == Array(Self.expectedOutputs.dropFirst(7)))
        try first.memory.write(UInt64(0x5eed), at: Self.marker)
        #expect(try second.memory.read(UInt32.self, at: Self.counter) == atSnapshot)
        #expect(try second.memory.read(UInt64.self, at: Self.marker) == 0)

        // The second guest still continues from the snapshot, unaffected.
        #expect(try Self.run(second.vcpu) == Array(Self.expectedOutputs.dropFirst(7)))
        // And the file is untouched by either (MAP_PRIVATE).
        let third = try Snapshot.load(path, expecting: F.identity).mapMemory()
        #expect(try third.read(UInt32.self, at: Self.counter) == atSnapshot)
        #expect(try third.read(UInt64.self, at: Self.marker) == 0)
    }

    /// A snapshot taken right after an exit must not replay it: KVM finishes an exit's
    /// instruction only on the next KVM_RUN (an IN stores its data then; a hardware
    /// OUT moves RIP then), and `capture` runs that completion first.
    @Test func aSnapshotAfterAPortReadDoesNotRepeatTheRead() throws {
        try requireKVM()
        // in al, 0x12; movzx eax, al; out 0x10, eax; mov al, 0xff; out 0x11, al; jmp $
        let program: [UInt8] = [0xe4, 0x12, 0x0f, 0xb6, 0xc0, 0xe7, 0x10, 0xb0, 0xff, 0xe6, 0x11, 0xeb, 0xfe]
        let machine = try BareVCPUTests.BareMachine(code: program)
        #expect(try machine.vcpu.runOnce() == .io(port: 0x12, size: 1, count: 1, isWrite: false, value: 0, bytes: []))
        machine.vcpu.completeIORead(0x42)
        let directory = try F.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/guest.snap"
        let kvm = try KVMSystem()
        try SnapshotFile.write(to: path, identity: F.identity, machine: try MachineState.capture(machine.vm),
                               vcpus: [try VCPUState.capture(machine.vcpu, system: kvm)], memory: machine.memory)
        let restored = try RestoredMachine(try Snapshot.load(path, expecting: F.identity))
        #expect(try Self.run(restored.vcpu) == [0x42])
    }

    @Test func capturedStateCoversWhatThisKVMOffers() throws {
        try requireKVM()
        let machine = try BareVCPUTests.BareMachine(code: Self.program)
        let kvm = try KVMSystem()
        let state = try VCPUState.capture(machine.vcpu, system: kvm)
        if kvm.checkExtension(KVM_CAP_XSAVE) > 0 {
            guard case .xsave(let area) = state.fpu else { Issue.record("XSAVE offered but not captured"); return }
            #expect(area.count >= 4096)
        }
        #expect((state.xcrs != nil) == (kvm.checkExtension(KVM_CAP_XCRS) > 0))
        let listed = try kvm.msrIndexList()
        #expect(!state.msrs.isEmpty && state.msrs.count <= listed.count)
        #expect(state.tsc != nil)
        #expect(!state.cpuid.isEmpty)
    }

    @Test func thePITIsSavedAndRestoredOnlyWhereItExists() throws {
        try requireKVM()
        let kvm = try KVMSystem()
        let withPIT = try kvm.createVM()
        try withPIT.createIRQChip()
        try withPIT.createPIT()
        let state = try MachineState.capture(withPIT)
        #expect(state.pit != nil)
        let another = try kvm.createVM()
        try another.createIRQChip()
        try another.createPIT()
        try state.restore(to: another)
        let without = try kvm.createVM()
        try without.createIRQChip()
        #expect(try MachineState.capture(without).pit == nil)
        #expect {
            try state.restore(to: without)
        } throws: { error in
            guard case .unsupported = error as? SnapshotError else { return false }
            return true
        }
    }
}
