import Testing
import Foundation
#if canImport(Glibc)
import Glibc
#endif
@testable import VMM

extension FuseTests {
    /// A share in use is saved by path relative to its root and reopened in another
    /// server, possibly over another host directory; nothing in a snapshot reaches
    /// outside the share.
    @Suite struct SnapshotTests {
        static func prepare(_ path: String) throws {
            try FileManager.default.createDirectory(atPath: path + "/dir", withIntermediateDirectories: false)
            try Data("hello\n".utf8).write(to: URL(fileURLWithPath: path + "/dir/file"))
        }

        @Test func inodesAndHandlesAreReopenedByPathInAnotherShare() throws {
            let saved = try FuseTestShare(prepare: Self.prepare)
            let dir = try saved.lookup("dir")
            let file = try saved.lookup("file", in: dir.nodeid)
            _ = try saved.lookup("file", in: dir.nodeid)            // two lookups
            let fh = try saved.open(file.nodeid, flags: O_RDONLY)
            let dh = try saved.opendir(dir.nodeid)
            let state = try saved.server.captureState()

            let restored = try FuseTestShare(initialize: false, prepare: Self.prepare)
            try restored.server.restoreState(state)
            #expect(restored.server.session == saved.server.session)
            #expect(restored.fileSystem.lookupCount(file.nodeid) == 2)
            #expect(restored.fileSystem.lookupCount(dir.nodeid) == 1)
            #expect(restored.fileSystem.handleCount == 2)
            // The guest's fh reads the restored share's file; its directory handle lists it.
            #expect(try restored.read(file.nodeid, fh: fh) == Array("hello\n".utf8))
            #expect(try restored.list(dir.nodeid).map(\.name).contains("file"), "dh \(dh)")
            // The guest's nodeids go on from where they were.
            let more = try restored.create("new", in: dir.nodeid)
            #expect(more.0.nodeid > file.nodeid)
        }

        @Test func anUnmountedShareSavesNoSession() throws {
            let share = try FuseTestShare(initialize: false)
            let state = try share.server.captureState()
            #expect(state == [0])
            let other = try FuseTestShare(initialize: false)
            try other.server.restoreState(state)
            #expect(other.server.session == nil)
        }

        /// A session holding one node at `path` (as a hostile or corrupt file would).
        static func state(path: String, type: mode_t = S_IFREG) -> [UInt8] {
            var writer = SnapshotWriter()
            writer.u8(1)
            writer.u32(38)
            writer.u32(0)
            writer.u32(4096)
            writer.u64(10)                  // next nodeid
            writer.u32(1)
            writer.u64(2)
            writer.u64(1)
            writer.u32(UInt32(type))
            writer.blob(Array(path.utf8))
            writer.u64(1)                   // next fh
            writer.u32(0)
            return writer.bytes
        }

        @Test(arguments: ["../secret", "dir/../../secret", "/etc/passwd", "dir//file", "./dir/file", "", "up/secret"])
        func pathsLeavingTheShareAreRefused(path: String) throws {
            let share = try FuseTestShare(initialize: false, prepare: Self.prepare)
            #expect(Glibc.symlink("..", share.host("up")) == 0)
            #expect(throws: SnapshotError.self) { try share.server.restoreState(Self.state(path: path)) }
            #expect(share.server.session == nil)
            #expect(share.fileSystem.inodeCount == 1)
        }

        @Test func aPathNowOfAnotherTypeIsRefused() throws {
            let share = try FuseTestShare(initialize: false, prepare: Self.prepare)
            #expect(throws: SnapshotError.self) { try share.server.restoreState(Self.state(path: "dir", type: S_IFREG)) }
            try share.server.restoreState(Self.state(path: "dir", type: S_IFDIR))
            #expect(share.fileSystem.lookupCount(2) == 1)
        }

        @Test func aDeletedOpenFileCannotBeSaved() throws {
            let share = try FuseTestShare(prepare: Self.prepare)
            let dir = try share.lookup("dir")
            let file = try share.lookup("file", in: dir.nodeid)
            _ = try share.open(file.nodeid, flags: O_RDONLY)
            #expect(unlink(share.host("dir/file")) == 0)
            #expect(throws: SnapshotError.self) { try share.server.captureState() }
        }
    }
}
