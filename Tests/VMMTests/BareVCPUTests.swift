import Testing
@testable import VMM

/// Tiny 64-bit guests run on a real vCPU: the exits the VMM relies on, and the
/// emulator quirks (FWAIT, INT3) handled the same way on an emulating host and on
/// hardware (where the instructions simply run).
@Suite(.serialized) struct BareVCPUTests {
    static let codeAddress = GuestAddress(0x100000)
    static let handlerAddress = GuestAddress(0x100100)
    static let idtAddress = GuestAddress(0x3000)

    struct BareMachine {
        let vm: KVMVirtualMachine
        let memory: GuestMemory
        let vcpu: KVMVCPU
        var quirks: [String] = []

        init(code: [UInt8], breakpointHandler: [UInt8]? = nil) throws {
            let kvm: KVMSystem
            (kvm, vm, memory) = try makeBareVM(code: code, at: BareVCPUTests.codeAddress)
            vcpu = try vm.createVCPU(index: 0)
            try X86VCPUSetup.configure(vcpu, entry: BareVCPUTests.codeAddress, cpuid: try X86CPUID.base(kvm), cpuCount: 1)
            if let breakpointHandler {
                try memory.write(bytes: breakpointHandler, at: BareVCPUTests.handlerAddress)
                // 64-bit interrupt gate for vector 3: selector 0x08, present, DPL 0, type 0xE.
                let offset = BareVCPUTests.handlerAddress.rawValue
                let gate = BareVCPUTests.idtAddress + 3 * 16
                try memory.write(UInt16(offset & 0xffff), at: gate)
                try memory.write(UInt16(0x08), at: gate + 2)
                try memory.write(UInt16(0x8e00), at: gate + 4)
                try memory.write(UInt16((offset >> 16) & 0xffff), at: gate + 6)
                try memory.write(UInt32(offset >> 32), at: gate + 8)
                var sregs = try vcpu.specialRegisters()
                sregs.idt.base = BareVCPUTests.idtAddress.rawValue
                sregs.idt.limit = 4 * 16 - 1
                try vcpu.setSpecialRegisters(sregs)
            }
        }

        /// Runs until an exit other than a handled quirk; at most `limit` exits.
        mutating func run(limit: Int = 16) throws -> VCPUExit {
            for _ in 0..<limit {
                let exit = try vcpu.runOnce()
                if case .internalError(let error) = exit, error.isEmulationFailure, let quirk = emulatorQuirk(error.instruction) {
                    try quirk.apply(vcpu)
                    quirks.append(quirk.name)
                    continue
                }
                if exit == .interrupted { continue }
                return exit
            }
            Issue.record("no conclusive exit after \(limit) exits")
            return .interrupted
        }
    }

    @Test func portWriteExitCarriesTheValue() throws {
        try requireKVM()
        var machine = try BareMachine(code: [0xb0, 0x42, 0xe6, 0x10, 0xeb, 0xfe])  // mov al,0x42; out 0x10,al; jmp $
        #expect(try machine.run() == .io(port: 0x10, size: 1, count: 1, isWrite: true, value: 0x42, bytes: []))
    }

    @Test func mmioReadIsCompletedByTheVMM() throws {
        try requireKVM()
        // mov eax,[0x800000] (past the 4 MiB of RAM, inside the boot identity map); out 0x10,al; jmp $
        var machine = try BareMachine(code: [0x8b, 0x04, 0x25, 0x00, 0x00, 0x80, 0x00, 0xe6, 0x10, 0xeb, 0xfe])
        #expect(try machine.run() == .mmio(address: 0x80_0000, length: 4, isWrite: false, value: 0))
        machine.vcpu.completeMMIORead(0x7472_6976)
        #expect(try machine.run() == .io(port: 0x10, size: 1, count: 1, isWrite: true, value: 0x76, bytes: []))
    }

    @Test func fwaitRunsOrIsSkipped() throws {
        try requireKVM()
        var machine = try BareMachine(code: [0x9b, 0xb0, 0x42, 0xe6, 0x10, 0xeb, 0xfe])  // fwait; mov; out; jmp $
        #expect(try machine.run() == .io(port: 0x10, size: 1, count: 1, isWrite: true, value: 0x42, bytes: []))
        if HostKind.detect() == .emulating { #expect(machine.quirks == ["fwait skipped"]) }
        else { #expect(machine.quirks.isEmpty) }
    }

    @Test func int3ReachesTheGuestBreakpointHandlerAfterTheInstruction() throws {
        try requireKVM()
        // main: int3; jmp $     handler: mov al,[rsp] (low byte of the pushed RIP); out 0x11,al; jmp $
        var machine = try BareMachine(code: [0xcc, 0xeb, 0xfe], breakpointHandler: [0x8a, 0x04, 0x24, 0xe6, 0x11, 0xeb, 0xfe])
        // The pushed RIP is the byte after the INT3 (0x100001): the kernel's int3_selftest relies on that.
        #expect(try machine.run() == .io(port: 0x11, size: 1, count: 1, isWrite: true, value: 0x01, bytes: []))
        if HostKind.detect() == .emulating { #expect(machine.quirks == ["int3 injected as #BP"]) }
    }

    @Test func anExceptionWithoutHandlerEndsAsShutdown() throws {
        try requireKVM()
        // int3 with an empty IDT: #BP -> #GP -> double fault -> triple fault, the way `reboot=t` ends a guest.
        var machine = try BareMachine(code: [0xcc, 0xeb, 0xfe])
        #expect(try machine.run() == .shutdown)
    }

    @Test func unknownEmulationFailuresAreNotQuirks() {
        #expect(emulatorQuirk([0x0f, 0x01, 0xd0]) == nil)   // xgetbv
        #expect(emulatorQuirk([]) == nil)
        #expect(emulatorQuirk([0x9b])?.name == "fwait skipped")
    }
}
