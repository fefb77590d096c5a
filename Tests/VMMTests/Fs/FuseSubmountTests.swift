import Testing
import Foundation
#if canImport(Glibc)
import Glibc
#endif
@testable import VMM

extension FuseTests {
    /// A share whose entries are other host mounts (sm-runc's `binds` share: one bind
    /// mount per entry). Inode numbers repeat across file systems (every tmpfs root is
    /// inode 1, and a fresh tmpfs numbers its files from 2), so the server must tell
    /// inodes apart by device and inode, and must cross into each mount.
    @Suite struct SubmountTests {
        /// Mounts to detach when the test ends, before the share (a recursive delete) goes.
        final class Mounts {
            var paths: [String] = []
            func tmpfs(_ path: String) throws {
                try #require(mount("tmpfs", path, "tmpfs", 0, "size=1m") == 0, "mount tmpfs on \(path): \(String(cString: strerror(errno)))")
                paths.append(path)
            }
            func bind(_ source: String, _ target: String) throws {
                try #require(mount(source, target, nil, UInt(MS_BIND), nil) == 0, "bind \(source) on \(target): \(String(cString: strerror(errno)))")
                paths.append(target)
            }
            func detachAll() {
                for path in paths.reversed() { umount2(path, Int32(MNT_DETACH)) }
                paths = []
            }
        }

        @Test func entriesOnOtherFileSystemsWithTheSameInodeNumbersStayDistinct() throws {
            let mounts = Mounts()
            let share = try FuseTestShare { path in
                for name in ["a", "b"] {
                    try FileManager.default.createDirectory(atPath: path + "/" + name, withIntermediateDirectories: false)
                }
            }
            defer { withExtendedLifetime(share) { mounts.detachAll() } }
            try mounts.tmpfs(share.host("a"))
            try mounts.tmpfs(share.host("b"))
            try share.writeHost("a/f", "in a\n")
            try share.writeHost("b/f", "in b\n")
            let hostA = try #require(share.lstatHost("a")), hostB = try #require(share.lstatHost("b"))
            #expect(hostA.st_dev != hostB.st_dev)
            #expect(hostA.st_ino == hostB.st_ino, "both tmpfs roots are inode 1: the case this test is about")

            let a = try share.lookup("a"), b = try share.lookup("b")
            #expect(a.nodeid != b.nodeid)
            let fa = try share.lookup("f", in: a.nodeid), fb = try share.lookup("f", in: b.nodeid)
            #expect(fa.nodeid != fb.nodeid)
            for (entry, text) in [(fa, "in a\n"), (fb, "in b\n")] {
                let fh = try share.open(entry.nodeid, flags: O_RDONLY)
                #expect(try share.read(entry.nodeid, fh: fh) == Array(text.utf8))
                _ = share.release(entry.nodeid, fh: fh)
            }
            // READDIRPLUS of the top sees the mounts too, one nodeid each.
            let plus = try share.list(1, plus: true).filter { $0.name == "a" || $0.name == "b" }
            #expect(Set(plus.compactMap { $0.entry?.nodeid }) == [a.nodeid, b.nodeid])

            // Changes land in the mounted file system, not in the directory under it.
            let (created, fh) = try share.create("new", in: b.nodeid)
            #expect(try share.write(created.nodeid, fh: fh, Array("guest".utf8)) == 5)
            _ = share.release(created.nodeid, fh: fh)
            #expect(share.readHost("b/new") == "guest")
            umount2(share.host("b"), Int32(MNT_DETACH))
            mounts.paths.removeAll { $0 == share.host("b") }
            #expect(share.readHost("b/new") == nil)
        }

        @Test func aFileBoundOverAnEntryShowsThatFileOnly() throws {
            let mounts = Mounts()
            let share = try FuseTestShare()
            defer { withExtendedLifetime(share) { mounts.detachAll() } }
            let outside = share.top + "/outside"
            try FileManager.default.createDirectory(atPath: outside, withIntermediateDirectories: false)
            try mounts.tmpfs(outside)
            try Data("bound file\n".utf8).write(to: URL(fileURLWithPath: outside + "/file"))
            try Data("sibling\n".utf8).write(to: URL(fileURLWithPath: outside + "/sibling"))
            try share.writeHost("0", "")
            try mounts.bind(outside + "/file", share.host("0"))

            let entry = try share.lookup("0")
            #expect(entry.attr.type == UInt32(S_IFREG) && entry.attr.size == 11)
            let fh = try share.open(entry.nodeid, flags: O_RDWR)
            #expect(try share.read(entry.nodeid, fh: fh) == Array("bound file\n".utf8))
            #expect(try share.write(entry.nodeid, fh: fh, offset: 11, Array("more\n".utf8)) == 5)
            _ = share.release(entry.nodeid, fh: fh)
            #expect(try String(contentsOfFile: outside + "/file", encoding: .utf8) == "bound file\nmore\n")
            #expect(share.lookupError("sibling") == ENOENT)
            #expect(try share.list(1).map(\.name).sorted() == [".", "..", "0"])
        }
    }
}
