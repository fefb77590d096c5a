import Testing
#if canImport(Glibc)
import Glibc
#endif
@testable import VMM

extension VsockTests {
    /// The device behind the virtio-mmio transport, with host events arriving as the
    /// event loop delivers them: `hostEventsReady(on:)`.
    @Suite struct TransportTests {
        let directory: VsockTemporaryDirectory
        let memory: GuestMemory
        let device: VirtioVsock
        let transport: VirtioMMIOTransport
        let recorder = Recorder()
        var rx: MockDriver
        var tx: MockDriver
        let event: MockDriver

        init() throws {
            directory = try VsockTemporaryDirectory()
            memory = try GuestMemory(size: 8 << 20)
            let recorder = self.recorder
            device = try VirtioVsock(guestCID: 3, socketPath: directory.path + "/v.sock") { line in
                recorder.logs.withLock { $0.append(line) }
            }
            transport = VirtioMMIOTransport(
                name: "test-vsock", device: device, base: GuestAddress(0xd000_0000), irq: 5, memory: memory,
                interrupt: { recorder.interrupts.add(1, ordering: .relaxed) },
                log: { line in recorder.logs.withLock { $0.append(line) } })
            rx = MockDriver(memory: memory, size: 16)
            tx = ShiftedDriver(base: MockDriver(memory: memory, size: 16), shift: 0x10000).driver
            event = ShiftedDriver(base: MockDriver(memory: memory, size: 16), shift: 0x20000).driver
        }

        func w(_ offset: UInt64, _ value: UInt64) { transport.write(offset: offset, length: 4, value: value) }

        /// The Linux driver's bring-up: VERSION_1, three queues, receive buffers, DRIVER_OK.
        mutating func bringUp() throws {
            #expect(transport.read(offset: 0x008, length: 4) == 19)
            transport.bringUpLikeLinux(queues: [rx, tx, event], driverOK: false)
            for i: UInt16 in 0..<8 {
                try rx.setDescriptor(i, .init(address: VsockHarness.rxAddress(i), length: VsockHarness.rxBufferSize, flags: 2))
                try rx.publish(i)
            }
            w(0x70, 15)
            #expect(transport.read(offset: 0x100, length: 4) == 3)     // guest_cid
        }

        func waitForEvents() -> Bool {
            var entry = pollfd(fd: device.hostEvents.rawValue, events: Int16(POLLIN), revents: 0)
            return poll(&entry, 1, 2000) == 1
        }

        func eventsPending() -> Bool {
            var entry = pollfd(fd: device.hostEvents.rawValue, events: Int16(POLLIN), revents: 0)
            return poll(&entry, 1, 0) == 1
        }

        @Test mutating func aHostConnectReachesTheGuestWithAnInterrupt() throws {
            try bringUp()
            let host = try VsockHostEnd.connect(directory.path + "/v.sock")
            #expect(host.writeSome(Array("CONNECT 52\n".utf8)[...]) == 11)
            // Accept, then the command: two rounds of the event loop.
            for _ in 0..<2 where try rx.usedIndex() == 0 {
                #expect(waitForEvents())
                device.hostEventsReady(on: transport)
            }
            #expect(try rx.usedIndex() == 1)
            let request = try #require(VsockHeader(try memory.readBytes(at: GuestAddress(VsockHarness.rxAddress(0)), count: 44)))
            #expect(request.op == .request && request.destinationPort == 52)
            #expect(recorder.interrupts.load(ordering: .relaxed) == 1)
            #expect(!eventsPending())
        }

        @Test mutating func aStoppedDeviceDoesNotLeaveTheEventLoopSpinning() throws {
            // Before DRIVER_OK the listener is not watched: a host connection waits.
            let host = try VsockHostEnd.connect(directory.path + "/v.sock")
            #expect(!eventsPending())
            try bringUp()
            #expect(waitForEvents())
            device.hostEventsReady(on: transport)          // accepted; waits for its command
            // A hostile transmit chain stops the device (DEVICE_NEEDS_RESET)...
            try tx.setDescriptor(0, .init(address: 0x300000, length: 44, flags: 1, next: 0))
            try tx.publish(0)
            transport.queueNotified(1)
            #expect(transport.read(offset: 0x70, length: 4) & 0x40 != 0)
            // ...and host input for it is taken off the event set, not left ready forever.
            #expect(host.writeSome(Array("CONNECT 52\n".utf8)[...]) == 11)
            #expect(waitForEvents())
            device.hostEventsReady(on: transport)
            #expect(!eventsPending())
            #expect(try rx.usedIndex() == 0)
            // A driver reset drops the connection; the host sees end-of-file.
            w(0x70, 0)
            #expect(host.readNow() == .end)
        }
    }
}
