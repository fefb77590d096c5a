import Foundation
import Testing
import CKVM
import Synchronization
@testable import VMM

/// Two vCPUs set up the way Machine sets them up: vCPU 0 in long mode at an entry
/// point, vCPU 1 an application processor left in its reset state. The boot vCPU
/// starts it with INIT and STARTUP IPIs through KVM's in-kernel local APIC (x2APIC
/// ICR writes), as the Linux guest does; the AP runs a real-mode trampoline.
@Suite(.serialized) struct BareSMPTests {
    typealias F = SnapshotFixtures
    static let bootCode = GuestAddress(0x100000)
    /// SIPI vector 0x10: the AP starts in real mode at CS 0x1000, IP 0 (0x10000).
    static let sipiVector: UInt8 = 0x10
    static var trampoline: GuestAddress { GuestAddress(UInt64(sipiVector) << 12) }

    /// BSP: x2APIC on, LAPIC software-enabled, INIT then SIPI to APIC id 1; `out 0x10`; spin.
    static let bootProgram: [UInt8] = [
        0xb9, 0x1b, 0x00, 0x00, 0x00,       // mov ecx, 0x1b (IA32_APIC_BASE)
        0x0f, 0x32,                         // rdmsr
        0x0d, 0x00, 0x0c, 0x00, 0x00,       // or eax, 0xc00 (enable, x2APIC)
        0x0f, 0x30,                         // wrmsr
        0xb9, 0x0f, 0x08, 0x00, 0x00,       // mov ecx, 0x80f (x2APIC SVR)
        0xb8, 0xff, 0x01, 0x00, 0x00,       // mov eax, 0x1ff
        0x31, 0xd2,                         // xor edx, edx
        0x0f, 0x30,                         // wrmsr
        0xb9, 0x30, 0x08, 0x00, 0x00,       // mov ecx, 0x830 (x2APIC ICR)
        0xba, 0x01, 0x00, 0x00, 0x00,       // mov edx, 1 (destination APIC id)
        0xb8, 0x00, 0x45, 0x00, 0x00,       // mov eax, 0x4500 (INIT, assert)
        0x0f, 0x30,                         // wrmsr
        0xb8, sipiVector, 0x46, 0x00, 0x00, // mov eax, 0x46xx (STARTUP, vector)
        0x0f, 0x30,                         // wrmsr
        0xb0, 0x55, 0xe6, 0x10,             // mov al, 0x55; out 0x10, al
        0xeb, 0xfe,                         // jmp $
    ]

    /// AP, 16-bit real mode: `out 0x11` 0xa5, then 0xa6, then spin.
    static let apProgram: [UInt8] = [
        0xb0, 0xa5, 0xe6, 0x11,             // mov al, 0xa5; out 0x11, al
        0xfe, 0xc0, 0xe6, 0x11,             // inc al; out 0x11, al
        0xeb, 0xfe,                         // jmp $
    ]

    struct TwoVCPUMachine {
        let kvm: KVMSystem
        let vm: KVMVirtualMachine
        let memory: GuestMemory
        let bsp: KVMVCPU
        let ap: KVMVCPU

        init() throws {
            (kvm, vm, memory) = try makeBareVM(code: BareSMPTests.bootProgram, at: BareSMPTests.bootCode)
            try memory.write(bytes: BareSMPTests.apProgram, at: BareSMPTests.trampoline)
            bsp = try vm.createVCPU(index: 0)
            ap = try vm.createVCPU(index: 1)
            let cpuid = try X86CPUID.base(kvm)
            try X86VCPUSetup.configure(bsp, entry: BareSMPTests.bootCode, cpuid: cpuid, cpuCount: 2)
            try X86VCPUSetup.configureApplicationProcessor(ap, cpuid: cpuid, cpuCount: 2)
        }
    }

    /// Runs `vcpu` on its own thread until a conclusive exit (not `.interrupted`), or
    /// until `timeout` seconds pass, when it is kicked out of KVM_RUN (nil).
    static func runOnThread(_ vcpu: KVMVCPU, timeout: Double) throws -> VCPUExit? {
        #expect(ckvm_install_kick_handler() == 0)
        let result = Mutex<VCPUExit?>(nil)
        let giveUp = Atomic<Bool>(false)
        let done = DispatchSemaphore(value: 0)
        let thread = OSThread(name: "test-vcpu\(vcpu.index)") {
            defer { done.signal() }
            guard ckvm_unblock_kick_signal() == 0 else { Issue.record("pthread_sigmask: \(errno)"); return }
            while !giveUp.load(ordering: .sequentiallyConsistent) {
                do {
                    let exit = try vcpu.runOnce()
                    if exit == .interrupted { continue }
                    result.withLock { $0 = exit }
                    return
                } catch {
                    Issue.record("\(error)")
                    return
                }
            }
        }
        try thread.start()
        if done.wait(timeout: .now() + timeout) == .timedOut {
            giveUp.store(true, ordering: .sequentiallyConsistent)
            vcpu.requestImmediateExit()
            thread.kill(ckvm_kick_signal())
            done.wait()
            vcpu.requestImmediateExit(false)
        }
        thread.join()
        return result.withLock { $0 }
    }

    static func cpuidLeaf(_ entries: [kvm_cpuid_entry2], _ function: UInt32) -> kvm_cpuid_entry2? {
        entries.first { $0.function == function && $0.index == 0 }
    }

    @Test func anApplicationProcessorWaitsInItsResetStateWithItsOwnAPICID() throws {
        try requireKVM()
        let machine = try TwoVCPUMachine()
        #expect(try machine.bsp.mpState().mp_state == UInt32(KVM_MP_STATE_RUNNABLE))
        #expect(try machine.ap.mpState().mp_state == UInt32(KVM_MP_STATE_UNINITIALIZED))
        // The BSP at the entry in long mode; the AP at the reset vector, real mode.
        #expect(try machine.bsp.registers().rip == Self.bootCode.rawValue)
        #expect(try machine.bsp.specialRegisters().efer & 0x400 != 0)
        let apRegs = try machine.ap.registers(), apSregs = try machine.ap.specialRegisters()
        #expect(apRegs.rip == 0xfff0)
        #expect(apSregs.cs.selector == 0xf000)
        #expect(apSregs.cr0 & 1 == 0)
        // CPUID: each vCPU its own initial APIC id, both the CPU count.
        for (vcpu, id) in [(machine.bsp, UInt32(0)), (machine.ap, UInt32(1))] {
            let cpuid = try vcpu.cpuid()
            let leaf1 = try #require(Self.cpuidLeaf(cpuid, 1))
            #expect(leaf1.ebx >> 24 == id)
            #expect((leaf1.ebx >> 16) & 0xff == 2)
            #expect(leaf1.ecx & (1 << 24) != 0, "TSC-deadline LAPIC timer (KVM emulates it; older KVMs do not list it)")
            if let leafB = Self.cpuidLeaf(cpuid, 0xb) { #expect(leafB.edx == id) }
            // LINT0 ExtINT, LINT1 NMI on every local APIC, as the MP table says.
            let lapic = try vcpu.localAPIC()
            let (lint0, lint1) = withUnsafeBytes(of: lapic.regs) {
                ($0.loadUnaligned(fromByteOffset: 0x350, as: UInt32.self), $0.loadUnaligned(fromByteOffset: 0x360, as: UInt32.self))
            }
            #expect(lint0 & 0x700 == 0x700)
            #expect(lint1 & 0x700 == 0x400)
        }
    }

    @Test func anApplicationProcessorDoesNotRunWithoutASIPI() throws {
        try requireKVM()
        let machine = try TwoVCPUMachine()
        // Nobody sends it an IPI: KVM_RUN blocks (it is kicked out after a second).
        #expect(try Self.runOnThread(machine.ap, timeout: 1) == nil)
        #expect(try machine.ap.mpState().mp_state == UInt32(KVM_MP_STATE_UNINITIALIZED))
        #expect(try machine.ap.registers().rip == 0xfff0)
    }

    @Test func theBootVCPUStartsTheApplicationProcessorWithINITAndSIPI() throws {
        try requireKVM()
        let machine = try TwoVCPUMachine()
        let began = monotonicSeconds()
        #expect(try machine.bsp.runOnce() == .io(port: 0x10, size: 1, count: 1, isWrite: true, value: 0x55, bytes: []))
        let apExit = try Self.runOnThread(machine.ap, timeout: 60)
        #expect(apExit == .io(port: 0x11, size: 1, count: 1, isWrite: true, value: 0xa5, bytes: []),
                "the AP did not run its trampoline; MP state \((try? machine.ap.mpState().mp_state) ?? 99)")
        print("bare SMP: INIT/SIPI to the AP's first instruction's exit in \(formatFixed((monotonicSeconds() - began) * 1000, digits: 1)) ms")
        // Started at the SIPI vector in real mode: CS base = vector << 12.
        let sregs = try machine.ap.specialRegisters()
        #expect(sregs.cs.selector == UInt16(Self.sipiVector) << 8)
        #expect(sregs.cs.base == Self.trampoline.rawValue)
        #expect(try machine.ap.mpState().mp_state == UInt32(KVM_MP_STATE_RUNNABLE))
    }

    @Test func bothVCPUsAreCapturedAndRestoredAndShareOneTSC() throws {
        try requireKVM()
        let directory = try F.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/smp.snap"
        do {
            let machine = try TwoVCPUMachine()
            #expect(try machine.bsp.runOnce() == .io(port: 0x10, size: 1, count: 1, isWrite: true, value: 0x55, bytes: []))
            #expect(try Self.runOnThread(machine.ap, timeout: 60) == .io(port: 0x11, size: 1, count: 1, isWrite: true, value: 0xa5, bytes: []))
            let indices = try machine.kvm.msrIndexList()
            let states = try [machine.bsp, machine.ap].map { try VCPUState.capture($0, system: machine.kvm, msrIndices: indices) }
            #expect(states[1].mpState.mp_state == UInt32(KVM_MP_STATE_RUNNABLE))
            try SnapshotFile.write(to: path, identity: F.identity, machine: try MachineState.capture(machine.vm),
                                   vcpus: states, memory: machine.memory)
        }
        let snapshot = try Snapshot.load(path, expecting: F.identity, vcpuCount: 2)
        #expect(snapshot.vcpus.count == 2)
        let kvm = try KVMSystem()
        let vm = try kvm.createVM()
        try vm.setTSSAddress(X86Layout.tss)
        try vm.createIRQChip()
        let memory = try snapshot.mapMemory()
        try vm.setUserMemoryRegion(slot: 0, guestAddress: 0, size: memory.size, hostAddress: memory.hostAddress)
        let vcpus = try [vm.createVCPU(index: 0), vm.createVCPU(index: 1)]
        try snapshot.restore(into: vm, vcpus: vcpus, system: kvm)
        // One TSC: both continue from the BSP's saved value (KVM syncs host writes made
        // within a second), so they differ by at most the time between the two reads.
        let khz = UInt64(try vcpus[0].tscKHz())
        let tsc0 = try #require(try vcpus[0].msrs([0x10]).first?.value)
        let tsc1 = try #require(try vcpus[1].msrs([0x10]).first?.value)
        let apart = tsc0 > tsc1 ? tsc0 - tsc1 : tsc1 - tsc0
        #expect(apart < khz * 100, "restored TSCs \(tsc0) and \(tsc1) are \(apart) ticks apart (\(khz) kHz)")
        #expect(tsc0 >= snapshot.vcpus[0].tsc!)
        // The AP continues in real mode right after its first `out`.
        #expect(try vcpus[1].mpState().mp_state == UInt32(KVM_MP_STATE_RUNNABLE))
        #expect(try Self.runOnThread(vcpus[1], timeout: 60) == .io(port: 0x11, size: 1, count: 1, isWrite: true, value: 0xa6, bytes: []))
    }
}

/// Machine's vCPU count check, before anything is built.
@Suite struct MachineVCPUCountTests {
    @Test(arguments: [0, -1, MachineConfiguration.maximumVCPUs + 1])
    func aMachineRefusesAVCPUCountOutsideOneToNRCPUS(_ count: Int) {
        var configuration = MachineConfiguration(kernelPath: "/nonexistent/vmlinux")
        configuration.vcpuCount = count
        #expect {
            _ = try Machine(configuration)
        } throws: { error in
            guard case MachineError.invalidConfiguration(let what) = error else { return false }
            return what.contains("vcpus \(count)") && what.contains("1 to \(MachineConfiguration.maximumVCPUs)")
        }
    }

    @Test func theLimitIsTheGuestKernelsNRCPUS() throws {
        #expect(MachineConfiguration.maximumVCPUs == 8)
        // guest/kernel.config says the same.
        let config = try String(contentsOfFile: #filePath.replacingOccurrences(of: "Tests/VMMTests/BareSMPTests.swift", with: "guest/kernel.config"),
                                encoding: .utf8)
        #expect(config.split(separator: "\n").contains("CONFIG_NR_CPUS=\(MachineConfiguration.maximumVCPUs)"))
    }
}
