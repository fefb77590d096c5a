@testable import VMM

/// The driver side of a split virtqueue, written straight into guest memory
/// (rust-vmm's `mock.rs`): tests build descriptor chains a guest could send,
/// including hostile ones.
struct MockDriver {
    let memory: GuestMemory
    let size: UInt16
    let descriptors: GuestAddress
    let available: GuestAddress
    let used: GuestAddress
    var availableIndex: UInt16 = 0

    init(memory: GuestMemory, size: UInt16 = 8, descriptors: GuestAddress = GuestAddress(0x1000),
         available: GuestAddress = GuestAddress(0x2000), used: GuestAddress = GuestAddress(0x3000)) {
        self.memory = memory
        self.size = size
        self.descriptors = descriptors
        self.available = available
        self.used = used
    }

    func queue() -> Virtqueue {
        var q = Virtqueue(maxSize: size)
        q.descriptorTable = descriptors
        q.availableRing = available
        q.usedRing = used
        q.ready = true
        return q
    }

    struct Descriptor {
        var address: UInt64
        var length: UInt32
        var flags: UInt16 = 0
        var next: UInt16 = 0
    }

    func setDescriptor(_ index: UInt16, _ d: Descriptor) throws {
        let at = descriptors + UInt64(index) * 16
        try memory.write(d.address, at: at)
        try memory.write(d.length, at: at + 8)
        try memory.write(d.flags, at: at + 12)
        try memory.write(d.next, at: at + 14)
    }

    /// Makes `head` available and publishes the new index.
    mutating func publish(_ head: UInt16) throws {
        try memory.write(head, at: available + 4 + UInt64(availableIndex % size) * 2)
        availableIndex &+= 1
        try memory.write(availableIndex, at: available + 2)
    }

    func usedIndex() throws -> UInt16 { try memory.read(UInt16.self, at: used + 2) }
    func usedElement(_ i: UInt16) throws -> (id: UInt32, length: UInt32) {
        let at = used + 4 + UInt64(i % size) * 8
        return (try memory.read(UInt32.self, at: at), try memory.read(UInt32.self, at: at + 4))
    }
}

extension VirtioMMIOTransport {
    /// The Linux virtio-mmio driver's bring-up: ACKNOWLEDGE, DRIVER, features,
    /// FEATURES_OK, each queue (size and ring addresses from `queues`, then ready),
    /// DRIVER_OK (unless `driverOK` is false: Linux drivers fill receive queues during
    /// probe, before the core sets it). `selected` runs right after each queue is selected.
    func bringUpLikeLinux(queues: [MockDriver], features: UInt64 = VirtioFeature.version1, driverOK: Bool = true,
                          selected: (Int) -> Void = { _ in }) {
        func w(_ offset: UInt64, _ value: UInt64) { write(offset: offset, length: 4, value: value) }
        w(0x70, 1); w(0x70, 3)
        w(0x24, 0); w(0x20, features & 0xffff_ffff)
        w(0x24, 1); w(0x20, features >> 32)
        w(0x70, 11)
        for (i, driver) in queues.enumerated() {
            w(0x30, UInt64(i))
            selected(i)
            w(0x38, UInt64(driver.size))
            w(0x80, driver.descriptors.rawValue); w(0x84, 0)
            w(0x90, driver.available.rawValue); w(0x94, 0)
            w(0xa0, driver.used.rawValue); w(0xa4, 0)
            w(0x44, 1)
        }
        if driverOK { w(0x70, 15) }
    }
}
