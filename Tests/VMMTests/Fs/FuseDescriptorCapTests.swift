import Testing
import Foundation
#if canImport(Glibc)
import Glibc
#endif
@testable import VMM

extension FuseTests {
    /// The host fds a guest makes the file server hold (an inode per name it knows, an
    /// fd per open file) are capped per share and per VMM: past the cap the guest gets
    /// EMFILE / ENFILE and nothing is made on the host; FORGET, RELEASE and DESTROY give
    /// the room back.
    @Suite struct DescriptorCapTests {
        /// A share with `count` files `f0`, `f1`, ... on the host.
        static func share(files count: Int, budget: DescriptorBudget = DescriptorBudget(limit: 1 << 16),
                          shareLimit: Int? = nil) throws -> FuseTestShare {
            try FuseTestShare(budget: budget, shareLimit: shareLimit) { path in
                for i in 0..<count {
                    try Data("file \(i)\n".utf8).write(to: URL(fileURLWithPath: "\(path)/f\(i)"))
                }
            }
        }

        /// How many fds this process has open now.
        static func openFDs() throws -> Int {
            try FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count
        }

        @Test func lookupsAndOpensPastTheShareCapGetEMFILEAndForgetAndReleaseFreeSlots() throws {
            let share = try Self.share(files: 12, shareLimit: 8)
            #expect(share.fileSystem.descriptorLimit == 8)
            var nodes: [UInt64] = []
            for i in 0..<6 { nodes.append(try share.lookup("f\(i)").nodeid) }
            let fh0 = try share.open(nodes[0], flags: O_RDONLY)
            let fh1 = try share.open(nodes[1], flags: O_RDONLY)
            #expect(share.fileSystem.heldDescriptors == 8)
            // Full: a new name, a new open file, a new directory handle all get EMFILE.
            #expect(share.lookupError("f6") == EMFILE)
            #expect(share.openError(nodes[2]) == EMFILE)
            #expect(share.errno(.opendir, node: 1, FuseArgs.build { $0.u32(UInt32(bitPattern: O_RDONLY)); $0.u32(0) }) == EMFILE)
            // A name the guest already holds needs no new fd.
            #expect(try share.lookup("f0").nodeid == nodes[0])
            #expect(share.fileSystem.heldDescriptors == 8)
            // The host fds stay bounded however often the guest asks: 200 refused lookups
            // leave the process with about as many fds as before. (Other suites run in
            // parallel and open fds of their own, so the margin; a leak per request
            // would show 200 more.)
            let before = try Self.openFDs()
            #expect((0..<200).allSatisfy { _ in share.lookupError("f7") == EMFILE })
            #expect(try Self.openFDs() - before < 50)
            #expect(share.fileSystem.heldDescriptors == 8)

            // FORGET down to zero frees the inode's slot.
            share.forget(nodes[5], 1)
            #expect(share.fileSystem.heldDescriptors == 7)
            let f6 = try share.lookup("f6").nodeid
            #expect(share.lookupError("f7") == EMFILE)
            // RELEASE frees the handle's slot.
            #expect(share.release(nodes[0], fh: fh0) == 0)
            let fh2 = try share.open(nodes[2], flags: O_RDONLY)
            #expect(share.openError(nodes[3]) == EMFILE)
            #expect(share.release(nodes[1], fh: fh1) == 0)
            #expect(share.release(nodes[2], fh: fh2) == 0)
            share.forget(f6, 1)
            #expect(share.fileSystem.heldDescriptors == 5)
            #expect(try share.read(nodes[3], fh: try share.open(nodes[3], flags: O_RDONLY)) == Array("file 3\n".utf8))
        }

        @Test func theVMMBudgetIsSharedByItsSharesAndGivesENFILE() throws {
            let budget = DescriptorBudget(limit: 8)
            let first = try Self.share(files: 10, budget: budget)
            let second = try Self.share(files: 10, budget: budget)
            #expect(first.fileSystem.descriptorLimit == 6)            // three quarters of the budget
            var held: [UInt64] = []
            for i in 0..<6 { held.append(try first.lookup("f\(i)").nodeid) }
            #expect(first.lookupError("f6") == EMFILE)                // the share's cap
            _ = try second.lookup("f0")
            _ = try second.lookup("f1")
            #expect(budget.inUse == 8)
            #expect(second.lookupError("f2") == ENFILE)               // the VMM's budget
            first.forget(held[0], 1)
            #expect(budget.inUse == 7)
            _ = try second.lookup("f2")
            #expect(second.lookupError("f3") == ENFILE)
            // DESTROY gives back everything the session held.
            #expect(first.send(.destroy) != nil)
            #expect(first.fileSystem.heldDescriptors == 0)
            #expect(budget.inUse == 3)
            _ = try second.lookup("f3")
        }

        @Test func createAndMkdirAtTheCapMakeNothingOnTheHost() throws {
            let share = try Self.share(files: 2, shareLimit: 3)
            let node = try share.lookup("f0").nodeid
            _ = try share.lookup("f1")
            // CREATE needs room for the inode and the open file.
            #expect(share.errno(.create, FuseArgs.build { a in
                a.u32(UInt32(bitPattern: O_RDWR | O_CREAT)); a.u32(UInt32(S_IFREG) | 0o644); a.u32(0o022); a.u32(0); a.name("new")
            }) == EMFILE)
            #expect(share.lstatHost("new") == nil)
            _ = try share.mkdir("dir")
            #expect(share.errno(.mkdir, FuseArgs.build { a in a.u32(0o755); a.u32(0o022); a.name("dir2") }) == EMFILE)
            #expect(share.lstatHost("dir2") == nil)
            #expect(share.errno(.symlink, FuseArgs.build { a in a.name("link"); a.name("f0") }) == EMFILE)
            #expect(share.lstatHost("link") == nil)
            share.forget(node, 1)
            share.forget(try share.lookup("dir").nodeid, 2)
            #expect(share.fileSystem.heldDescriptors == 1)
            let (entry, fh) = try share.create("new")
            #expect(share.lstatHost("new") != nil)
            #expect(share.release(entry.nodeid, fh: fh) == 0)
        }

        @Test func aReaddirplusAtTheCapHandsOutNoEntries() throws {
            let share = try Self.share(files: 6, shareLimit: 3)
            let entries = try share.list(1, plus: true).filter { $0.name.hasPrefix("f") }
            #expect(entries.count == 6)
            // The directory handle and two inodes; the other names come without a nodeid.
            #expect(entries.filter { ($0.entry?.nodeid ?? 0) != 0 }.count == 2)
            #expect(share.fileSystem.heldDescriptors == 2)             // the handle was released
        }

        @Test func theBudgetIsSizedFromTheFileLimitWithHeadroom() {
            #expect(DescriptorBudget(fileLimit: 1024).limit == 768)
            #expect(DescriptorBudget(fileLimit: 1 << 20).limit == (1 << 20) - (1 << 18))
            #expect(DescriptorBudget(fileLimit: 100).limit == DescriptorBudget.minimumLimit)
            var limit = rlimit()
            #expect(getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0)
            let process = DescriptorBudget.forThisProcess()
            #expect(process.limit == max(Int(limit.rlim_cur) - DescriptorBudget.headroom(Int(limit.rlim_cur)), DescriptorBudget.minimumLimit))
            #expect(process.limit < Int(limit.rlim_cur))
        }
    }
}
