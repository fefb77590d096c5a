import Testing
@testable import VMM

@Suite struct GuestMemoryTests {
    @Test func readsBackWhatItWrites() throws {
        let memory = try GuestMemory(size: 1 << 20)
        try memory.write(UInt64(0x1122_3344_5566_7788), at: GuestAddress(0x1003))
        #expect(try memory.read(UInt64.self, at: GuestAddress(0x1003)) == 0x1122_3344_5566_7788)
        try memory.write(bytes: [1, 2, 3], at: GuestAddress(0xffffd))
        #expect(try memory.readBytes(at: GuestAddress(0xffffd), count: 3) == [1, 2, 3])
    }

    @Test(arguments: [
        (UInt64(1 << 20), 1),             // one past the end
        (UInt64(1 << 20) - 4, 8),         // straddles the end
        (UInt64.max - 2, 8),              // address + length overflows
        (UInt64(0), -1),                  // negative length
    ])
    func refusesAccessOutsideRAM(address: UInt64, length: Int) throws {
        let memory = try GuestMemory(size: 1 << 20)
        #expect(!memory.contains(GuestAddress(address), length: length))
        if length > 0 {
            #expect(throws: GuestMemoryError.outOfBounds(address: GuestAddress(address), length: length)) {
                try memory.readBytes(at: GuestAddress(address), count: length)
            }
        }
    }

    @Test func ringIndicesMustBeAligned() throws {
        let memory = try GuestMemory(size: 4096)
        #expect(throws: GuestMemoryError.self) { try memory.loadIndex(at: GuestAddress(3)) }
        try memory.storeIndex(7, at: GuestAddress(2))
        #expect(try memory.loadIndex(at: GuestAddress(2)) == 7)
    }
}
