import Testing
#if canImport(Glibc)
import Glibc
#endif
@testable import VMM

extension FuseTests {
    /// The FUSE session: INIT negotiation, requests before INIT, DESTROY, unknown
    /// opcodes and nodeids, and lookup counting with FORGET / BATCH_FORGET.
    @Suite struct SessionTests {
        @Test func initNegotiatesVersionLimitsAndFlags() throws {
            let share = try FuseTestShare(initialize: false)
            let reply = try share.ok(.initialize, initArgs(minor: 38, flags: 0xffff_ffff))
            #expect(reply.payload.count == 64)
            #expect(reply.p32(0) == 7 && reply.p32(4) == 38)
            #expect(reply.p32(8) == 128 << 10)                      // max_readahead echoed
            let flags = reply.p32(12)
            #expect(flags == FuseServer.supportedFlags)
            #expect(flags & FuseConstant.doReaddirplus != 0)
            #expect(flags & (FuseConstant.exportSupport | FuseConstant.dontMask | FuseConstant.setxattrExt | FuseConstant.initExt) == 0)
            #expect(reply.p32(20) == 1 << 20)                       // max_write
            #expect(reply.u16(16 + 28) == 256)                      // max_pages
            #expect(share.server.session == FuseServer.Session(minor: 38, flags: flags, maxWrite: 1 << 20))
        }

        @Test func initAnswersAnOlderMinorWithItsOwnAndOnlyOfferedFlags() throws {
            let share = try FuseTestShare(initialize: false)
            let reply = try share.ok(.initialize, initArgs(minor: 34, flags: FuseConstant.asyncRead | FuseConstant.exportSupport))
            #expect(reply.p32(4) == 34)
            #expect(reply.p32(12) == FuseConstant.asyncRead)
        }

        @Test func initRefusesProtocolsItCannotSpeak() throws {
            let share = try FuseTestShare(initialize: false)
            #expect(share.errno(.initialize, initArgs(major: 6)) == EPROTO)
            #expect(share.errno(.initialize, initArgs(minor: 30)) == EPROTO)
            // A newer major gets our major back (the kernel then retries with 7.x).
            let newer = try share.ok(.initialize, initArgs(major: 8, minor: 0))
            #expect(newer.p32(0) == 7)
            #expect(share.server.session == nil)
        }

        @Test func requestsBeforeInitFailWithEIO() throws {
            let share = try FuseTestShare(initialize: false)
            #expect(share.lookupError("x") == EIO)
            #expect(share.errno(.statfs) == EIO)
            share.forget(1, 1)                                      // still no reply
        }

        @Test func unknownOpcodesGetENOSYSAndTheSessionGoesOn() throws {
            let share = try FuseTestShare()
            #expect(share.errno(FuseOpcode(rawValue: 9999), [1, 2, 3]) == ENOSYS)
            #expect(share.errno(.getlk, FuseArgs.build { $0.zeros(48) }) == ENOSYS)
            #expect(share.errno(.copyFileRange, FuseArgs.build { $0.zeros(56) }) == ENOSYS)
            _ = try share.getattr(1)
        }

        @Test func malformedRequestsGetAnErrorReplyWithTheirUnique() throws {
            let share = try FuseTestShare()
            let message = fuseMessage(.lookup, unique: 4711, Array("no-nul".utf8))
            let reply = try #require(share.server.handle(message, arrivedLength: message.count))
            #expect(FuseTestReply(reply).unique == 4711)
            #expect(FuseTestReply(reply).error == EINVAL)
            #expect(reply.count == 16)
            // A malformed FORGET gets no reply at all; an unreadable header neither.
            let forget = fuseMessage(.forget, [1, 2])
            #expect(share.server.handle(forget, arrivedLength: forget.count) == nil)
            #expect(share.server.handle([1, 2, 3], arrivedLength: 3) == nil)
        }

        @Test func unknownNodeIDsAndHandlesGetEBADF() throws {
            let share = try FuseTestShare()
            #expect(try #require(share.send(.getattr, node: 12345, FuseArgs.build { $0.zeros(16) })).error == EBADF)
            #expect(share.lookupError("x", in: 999) == EBADF)
            #expect(share.errno(.read, node: 1, share.readArgs(fh: 77, size: 10)) == EBADF)
            #expect(share.release(1, fh: 77) == EBADF)
        }

        @Test func lookupsAreCountedAndForgetClosesTheInode() throws {
            let share = try FuseTestShare()
            try share.writeHost("f", "x")
            let first = try share.lookup("f")
            let second = try share.lookup("f")
            #expect(first.nodeid == second.nodeid && first.nodeid != 1)
            #expect(share.fileSystem.lookupCount(first.nodeid) == 2)
            share.forget(first.nodeid, 1)
            #expect(share.fileSystem.lookupCount(first.nodeid) == 1)
            share.forget(first.nodeid, 5)                           // more than held: gone, no underflow
            #expect(share.fileSystem.lookupCount(first.nodeid) == nil)
            #expect(share.fileSystem.inodeCount == 1)
            // The guest may look it up again: a new nodeid (nodeids are never reused).
            #expect(try share.lookup("f").nodeid > first.nodeid)
            // The root is never forgotten.
            share.forget(1, 100)
            _ = try share.getattr(1)
        }

        @Test func batchForgetDropsSeveralInodes() throws {
            let share = try FuseTestShare()
            try share.writeHost("a", "1")
            try share.writeHost("b", "2")
            let a = try share.lookup("a").nodeid, b = try share.lookup("b").nodeid
            _ = try share.lookup("b")
            let args = FuseArgs.build { x in x.u32(3); x.u32(0); x.u64(a); x.u64(1); x.u64(b); x.u64(1); x.u64(4040); x.u64(1) }
            #expect(share.send(.batchForget, args) == nil)
            #expect(share.fileSystem.lookupCount(a) == nil)
            #expect(share.fileSystem.lookupCount(b) == 1)
        }

        @Test func destroyForgetsEverythingAndEndsTheSession() throws {
            let share = try FuseTestShare()
            try share.writeHost("f", "x")
            let node = try share.lookup("f").nodeid
            _ = try share.open(node)
            #expect(share.fileSystem.handleCount == 1)
            _ = try share.ok(.destroy)
            #expect(share.fileSystem.inodeCount == 1 && share.fileSystem.handleCount == 0)
            #expect(share.server.session == nil)
            #expect(share.lookupError("f") == EIO)
            _ = try share.ok(.initialize, initArgs())
            #expect(try share.lookup("f").attr.size == 1)
        }

        @Test func interruptGetsNoReply() throws {
            let share = try FuseTestShare()
            #expect(share.send(.interrupt, FuseArgs.build { $0.u64(5) }) == nil)
        }
    }
}
