/// Places virtio-mmio devices: slot i at `mmioStart + i * 4 KiB` with ISA IRQ
/// `firstIRQ + i` (edge, through the IOAPIC, as the MP table routes it), an irqfd
/// for its interrupt and ioeventfds for its queue notifications.
struct VirtioSlots {
    static let firstIRQ: UInt32 = 5
    /// ISA IRQs 5 to 15 (the MP table routes IRQs 0 to 15).
    static let capacity = 11

    let vm: KVMVirtualMachine
    let memory: GuestMemory
    let loop: EventLoop
    let log: @Sendable (String) -> Void
    private(set) var transports: [VirtioMMIOTransport] = []

    init(vm: KVMVirtualMachine, memory: GuestMemory, loop: EventLoop, log: @escaping @Sendable (String) -> Void) {
        self.vm = vm
        self.memory = memory
        self.loop = loop
        self.log = log
    }

    /// Attaches `device` in the next slot and puts it on `bus`.
    /// `loop`: where its queue notifications are served (default: the machine's event loop).
    mutating func attach(_ device: any VirtioDevice, name: String, bus: inout Bus, loop: EventLoop? = nil) throws -> VirtioMMIOTransport {
        guard transports.count < Self.capacity else {
            throw MachineError.invalidConfiguration("more than \(Self.capacity) virtio devices")
        }
        let slot = transports.count
        let (base, irq) = Self.place(slot)
        let irqEvent = try OwnedDescriptor.eventFD("\(name) irq")
        try vm.registerIRQFD(irqEvent, gsi: irq)
        let transport = VirtioMMIOTransport(
            name: name, device: device, base: base, irq: irq, memory: memory,
            interrupt: { irqEvent.signalEvent() }, log: log)
        try bus.insert(transport, base: base.rawValue, size: X86Layout.mmioDeviceSize)
        try wireNotifications(transport, loop: loop ?? self.loop)
        transports.append(transport)
        return transport
    }

    /// Queue notifications through ioeventfds: the vCPU does not leave the kernel for them.
    private func wireNotifications(_ transport: VirtioMMIOTransport, loop: EventLoop) throws {
        do {
            for queue in 0..<transport.queueCount {
                let event = try OwnedDescriptor.eventFD("\(transport.name) queue \(queue)")
                try vm.registerIOEventFD(event, mmioAddress: transport.notifyAddress.rawValue, value: UInt32(queue))
                try loop.add(event) {
                    event.drainEvent()
                    transport.queueNotified(queue)
                }
            }
            transport.notifiesByEvent = true
        } catch {
            log("\(transport.name): ioeventfd unavailable (\(error)); queue notifications exit to user space")
        }
    }

    /// `virtio_mmio.device=` parameters declaring every attached device.
    var kernelParameters: [String] { transports.map(\.kernelParameter) }

    /// Slot `slot`'s register block and IRQ: the one place they are decided.
    static func place(_ slot: Int) -> (base: GuestAddress, irq: UInt32) {
        (X86Layout.mmioStart + UInt64(slot) * X86Layout.mmioDeviceSize, firstIRQ + UInt32(slot))
    }

    /// The `virtio_mmio.device=` parameters of `count` devices in slots 0..<count, as
    /// `kernelParameters` will be once they are attached.
    static func kernelParameters(count: Int) -> [String] {
        (0..<count).map { VirtioMMIOTransport.kernelParameter(base: place($0).base, irq: place($0).irq) }
    }
}
