import Testing
import Foundation
#if canImport(Glibc)
import Glibc
#endif
@testable import VMM

extension FuseTests {
    /// Entries and file data against a temporary host directory, each result checked
    /// on the host side.
    @Suite struct FileOperationTests {
        @Test func lookupAndGetattrSeeAFileTheHostWrote() throws {
            let share = try FuseTestShare()
            try share.writeHost("hello.txt", "hello, guest\n")
            let entry = try share.lookup("hello.txt")
            let host = try #require(share.lstatHost("hello.txt"))
            #expect(entry.attr.size == 13)
            #expect(entry.attr.type == UInt32(S_IFREG))
            #expect(entry.attr.ino == UInt64(host.st_ino))
            #expect(entry.attr.mode == UInt32(host.st_mode))
            #expect(entry.attr.mtime == UInt64(host.st_mtim.tv_sec) && entry.attr.mtimensec == UInt32(host.st_mtim.tv_nsec))
            let attr = try share.getattr(entry.nodeid)
            #expect(attr.size == 13 && attr.nlink == 1)
            let fh = try share.open(entry.nodeid, flags: O_RDONLY)
            #expect(try share.read(entry.nodeid, fh: fh) == Array("hello, guest\n".utf8))
            #expect(try share.read(entry.nodeid, fh: fh, offset: 7, size: 5) == Array("guest".utf8))
            #expect(try share.read(entry.nodeid, fh: fh, offset: 100).isEmpty)
            #expect(share.release(entry.nodeid, fh: fh) == 0)
            #expect(share.release(entry.nodeid, fh: fh) == EBADF)
            #expect(share.lookupError("missing") == ENOENT)
        }

        /// A missing name is a negative entry (node 0) the guest caches for the
        /// share's timeout, and an open keeps the guest's page cache when the session
        /// has FUSE_AUTO_INVAL_DATA (a changed file is still noticed), not without it.
        @Test func aMissingNameIsACachedNegativeEntryAndOpensKeepThePageCache() throws {
            let share = try FuseTestShare()
            let negative = try #require(share.send(.lookup, node: 1, FuseArgs.build { $0.name("missing") }))
            #expect(negative.error == 0 && negative.p64(0) == 0)
            #expect(negative.p64(16) == share.server.timeout.seconds && share.server.timeout.seconds > 0)
            try share.writeHost("f", "x")
            let entry = try share.lookup("f")
            let open = try #require(share.send(.open, node: entry.nodeid, FuseArgs.build { $0.u32(UInt32(O_RDONLY)); $0.u32(0) }))
            #expect(open.error == 0 && open.u32(16 + 8) & FuseConstant.fopenKeepCache != 0)

            let plain = try FuseTestShare(initialize: false)
            #expect(plain.send(.initialize, initArgs(flags: 0))?.error == 0)
            try plain.writeHost("f", "x")
            let plainEntry = try plain.lookup("f")
            let plainOpen = try #require(plain.send(.open, node: plainEntry.nodeid, FuseArgs.build { $0.u32(UInt32(O_RDONLY)); $0.u32(0) }))
            #expect(plainOpen.error == 0 && plainOpen.u32(16 + 8) & FuseConstant.fopenKeepCache == 0)
        }

        @Test func createWriteReadRenameUnlinkLandOnTheHost() throws {
            let share = try FuseTestShare()
            let (entry, fh) = try share.create("new.txt", mode: 0o640, uid: 1000, gid: 1001)
            var host = try #require(share.lstatHost("new.txt"))
            #expect(host.st_uid == 1000 && host.st_gid == 1001)
            #expect(host.st_mode == S_IFREG | 0o640)
            #expect(entry.attr.uid == 1000 && entry.attr.mode == UInt32(S_IFREG | 0o640))
            #expect(try share.write(entry.nodeid, fh: fh, Array("written by the guest".utf8)) == 20)
            #expect(try share.write(entry.nodeid, fh: fh, offset: 8, Array("BY".utf8)) == 2)
            #expect(share.readHost("new.txt") == "written BY the guest")
            #expect(try share.read(entry.nodeid, fh: fh, size: 7) == Array("written".utf8))
            #expect(share.errno(.flush, node: entry.nodeid, FuseArgs.build { $0.u64(fh); $0.zeros(16) }) == 0)
            #expect(share.errno(.fsync, node: entry.nodeid, FuseArgs.build { $0.u64(fh); $0.u32(1); $0.u32(0) }) == 0)
            #expect(share.release(entry.nodeid, fh: fh) == 0)

            _ = try share.ok(.rename, FuseArgs.build { a in a.u64(1); a.name("new.txt"); a.name("renamed.txt") })
            #expect(share.lstatHost("new.txt") == nil)
            #expect(share.readHost("renamed.txt") == "written BY the guest")
            // The nodeid still names the file after the rename.
            host = try #require(share.lstatHost("renamed.txt"))
            #expect(try share.getattr(entry.nodeid).ino == UInt64(host.st_ino))

            _ = try share.ok(.unlink, FuseArgs.build { $0.name("renamed.txt") })
            #expect(share.lstatHost("renamed.txt") == nil)
            #expect(share.errno(.unlink, FuseArgs.build { $0.name("renamed.txt") }) == ENOENT)
        }

        @Test func createHonoursOExclAndOpensAnExistingFileOtherwise() throws {
            let share = try FuseTestShare()
            try share.writeHost("exists", "keep")
            #expect(share.errno(.create, FuseArgs.build { a in
                a.u32(UInt32(O_RDWR | O_CREAT | O_EXCL)); a.u32(UInt32(S_IFREG) | 0o600); a.zeros(8); a.name("exists")
            }) == EEXIST)
            let (entry, fh) = try share.create("exists", flags: O_RDWR, mode: 0o600, uid: 5, gid: 5)
            // Opened, not re-created: owner and mode untouched.
            #expect(entry.attr.uid == 0 && entry.attr.mode & 0o777 == 0o644)
            #expect(try share.read(entry.nodeid, fh: fh) == Array("keep".utf8))
            // O_TRUNC is honoured (FUSE_ATOMIC_O_TRUNC).
            let (_, fh2) = try share.create("exists", flags: O_RDWR | O_TRUNC)
            _ = fh2
            #expect(share.readHost("exists") == "")
        }

        /// The VMM's umask (022 here) must not mask what the guest asked for; the
        /// process umask is not changed by the test (tests run in parallel).
        @Test func modesAreExactlyWhatTheGuestAskedDespiteTheVMMUmask() throws {
            let share = try FuseTestShare()
            _ = try share.create("shared", mode: 0o666)
            _ = try share.mkdir("dir", mode: 0o777)
            _ = try share.create("setuid", mode: 0o4755, uid: 1000, gid: 1000)
            _ = share.entry(try share.ok(.mknod, FuseArgs.build { a in
                a.u32(UInt32(S_IFIFO) | 0o666); a.u32(0); a.u32(0); a.u32(0); a.name("fifo")
            }))
            #expect(share.lstatHost("shared")?.st_mode == S_IFREG | 0o666)
            #expect(share.lstatHost("dir")?.st_mode == S_IFDIR | 0o777)
            #expect(share.lstatHost("fifo")?.st_mode == S_IFIFO | 0o666)
            // chown clears set-ID bits; the server restores what was asked for.
            #expect(share.lstatHost("setuid")?.st_mode == S_IFREG | 0o4755)
        }

        @Test func aSetGroupIDDirectoryKeepsItsGroupForNewEntries() throws {
            let share = try FuseTestShare()
            try FileManager.default.createDirectory(atPath: share.host("sgid"), withIntermediateDirectories: false)
            #expect(chown(share.host("sgid"), 0, 777) == 0 && chmod(share.host("sgid"), 0o2775) == 0)
            let dir = try share.lookup("sgid").nodeid
            _ = try share.create("file", in: dir, uid: 1000, gid: 1000)
            let sub = try share.mkdir("sub", in: dir, mode: 0o755, uid: 1000, gid: 1000)
            #expect(share.lstatHost("sgid/file")?.st_gid == 777)
            #expect(share.lstatHost("sgid/sub")?.st_gid == 777)
            #expect(share.lstatHost("sgid/sub")?.st_mode == S_IFDIR | 0o2755)
            #expect(sub.attr.uid == 1000)
        }

        @Test func mkdirAndRmdir() throws {
            let share = try FuseTestShare()
            let dir = try share.mkdir("d", mode: 0o750, uid: 42, gid: 43)
            let host = try #require(share.lstatHost("d"))
            #expect(host.st_mode == S_IFDIR | 0o750 && host.st_uid == 42 && host.st_gid == 43)
            #expect(dir.attr.type == UInt32(S_IFDIR))
            _ = try share.create("inner", in: dir.nodeid)
            #expect(share.errno(.rmdir, FuseArgs.build { $0.name("d") }) == ENOTEMPTY)
            _ = try share.ok(.unlink, node: dir.nodeid, FuseArgs.build { $0.name("inner") })
            _ = try share.ok(.rmdir, FuseArgs.build { $0.name("d") })
            #expect(share.lstatHost("d") == nil)
            #expect(share.errno(.mkdir, FuseArgs.build { a in a.u32(0o755); a.u32(0); a.name("..") }) == EINVAL)
        }

        @Test func symlinkAndReadlink() throws {
            let share = try FuseTestShare()
            let link = try share.symlink("link", to: "some/where/../else")
            #expect(link.attr.type == UInt32(S_IFLNK))
            var buffer = [CChar](repeating: 0, count: 256)
            let n = readlink(share.host("link"), &buffer, 255)
            #expect(String(decoding: buffer.prefix(n).map { UInt8(bitPattern: $0) }, as: UTF8.self) == "some/where/../else")
            #expect(try share.readlink(link.nodeid) == "some/where/../else")
            // READLINK of something that is not a symlink.
            #expect(share.errno(.readlink, node: 1) == EINVAL)
        }

        @Test func hardLinksShareANodeAndCountLinks() throws {
            let share = try FuseTestShare()
            let (file, _) = try share.create("one")
            let linked = share.entry(try share.ok(.link, FuseArgs.build { a in a.u64(file.nodeid); a.name("two") }))
            #expect(linked.nodeid == file.nodeid)
            #expect(linked.attr.nlink == 2)
            #expect(share.lstatHost("two")?.st_nlink == 2)
            #expect(share.lstatHost("one")?.st_ino == share.lstatHost("two")?.st_ino)
            #expect(share.fileSystem.lookupCount(file.nodeid) == 2)
            // Directories cannot be linked.
            let dir = try share.mkdir("dir")
            #expect(share.errno(.link, FuseArgs.build { a in a.u64(dir.nodeid); a.name("dir2") }) == EPERM)
        }

        @Test func mknodMakesAFIFOThatIsNeverOpenedOnTheHost() throws {
            let share = try FuseTestShare()
            let fifo = share.entry(try share.ok(.mknod, uid: 7, gid: 8, FuseArgs.build { a in
                a.u32(UInt32(S_IFIFO) | 0o600); a.u32(0); a.u32(0o022); a.u32(0); a.name("pipe")
            }))
            let host = try #require(share.lstatHost("pipe"))
            #expect(host.st_mode == S_IFIFO | 0o600 && host.st_uid == 7 && host.st_gid == 8)
            #expect(fifo.attr.type == UInt32(S_IFIFO))
            // Opening a FIFO here would block the VMM: the server refuses.
            #expect(share.openError(fifo.nodeid) == ENXIO)
            // CREATE without O_EXCL on the FIFO's name does not open it (an O_RDONLY
            // open would block until a writer came).
            #expect(share.errno(.create, FuseArgs.build { a in
                a.u32(UInt32(O_RDONLY | O_CREAT)); a.u32(UInt32(S_IFREG) | 0o644); a.zeros(8); a.name("pipe")
            }) == ENXIO)
            // A directory type is not a mknod.
            #expect(share.errno(.mknod, FuseArgs.build { a in a.u32(UInt32(S_IFDIR) | 0o755); a.zeros(12); a.name("d") }) == EINVAL)
        }

        @Test func readdirListsTheDirectoryAcrossSeveralRequests() throws {
            let share = try FuseTestShare()
            let names = (0..<40).map { "file-\($0)-with-a-longish-name" }
            for name in names { try share.writeHost(name, name) }
            let whole = try share.list(1).map(\.name)
            #expect(Set(whole) == Set(names + [".", ".."]))
            #expect(whole.count == names.count + 2)
            // 200 bytes hold only a few entries: the cookies continue the listing exactly.
            let paged = try share.list(1, size: 200).map(\.name)
            #expect(paged.sorted() == whole.sorted())
        }

        @Test func readdirplusLooksEntriesUpExceptDotAndDotDot() throws {
            let share = try FuseTestShare()
            try share.writeHost("a", "12345")
            try FileManager.default.createDirectory(atPath: share.host("sub"), withIntermediateDirectories: false)
            let listing = try share.list(1, plus: true)
            #expect(listing.count == 4)
            for (name, entry) in listing {
                let entry = try #require(entry)
                if name == "." || name == ".." {
                    #expect(entry.nodeid == 0)
                } else {
                    #expect(entry.nodeid > 1)
                    #expect(share.fileSystem.lookupCount(entry.nodeid) == 1)
                    #expect(entry.attr.ino == UInt64(share.lstatHost(name)!.st_ino))
                }
            }
            #expect(listing.first { $0.name == "a" }?.entry?.attr.size == 5)
            // A READDIRPLUS too small for any entry looks nothing up.
            let fh = try share.opendir(1)
            let tiny = try share.ok(.readdirplus, share.readArgs(fh: fh, size: 100))
            #expect(tiny.payload.isEmpty)
            #expect(share.fileSystem.inodeCount == 3)
        }

        @Test func renameFlags() throws {
            let share = try FuseTestShare()
            try share.writeHost("a", "A")
            try share.writeHost("b", "B")
            func rename2(_ flags: UInt32) -> Int32? {
                share.errno(.rename2, FuseArgs.build { x in x.u64(1); x.u32(flags); x.u32(0); x.name("a"); x.name("b") })
            }
            #expect(rename2(1) == EEXIST)                                   // RENAME_NOREPLACE
            #expect(rename2(2) == 0)                                        // RENAME_EXCHANGE
            #expect(share.readHost("a") == "B" && share.readHost("b") == "A")
            #expect(rename2(4) == EINVAL)                                   // RENAME_WHITEOUT is refused
            #expect(rename2(0) == 0)
            #expect(share.readHost("b") == "B" && share.lstatHost("a") == nil)
            // Into another directory.
            let dir = try share.mkdir("dir")
            _ = try share.ok(.rename, FuseArgs.build { x in x.u64(dir.nodeid); x.name("b"); x.name("moved") })
            #expect(share.readHost("dir/moved") == "B")
        }

        @Test func lseekFindsDataAndHolesAndFallocateExtends() throws {
            let share = try FuseTestShare()
            let (file, fh) = try share.create("sparse")
            _ = try share.write(file.nodeid, fh: fh, offset: 1 << 20, Array(repeating: 0x61, count: 4096))
            func lseek(_ offset: UInt64, _ whence: UInt32) -> FuseTestReply? {
                share.send(.lseek, node: file.nodeid, FuseArgs.build { a in a.u64(fh); a.u64(offset); a.u32(whence); a.u32(0) })
            }
            let data = try #require(lseek(0, 3))                           // SEEK_DATA
            #expect(data.error == 0)
            #expect(data.p64(0) <= 1 << 20)
            let hole = try #require(lseek(1 << 20, 4))                      // SEEK_HOLE
            #expect(hole.p64(0) == (1 << 20) + 4096)
            #expect(lseek((1 << 20) + 8192, 3)?.error == ENXIO)             // past the end
            #expect(lseek(0, 9)?.error == EINVAL)

            let fallocate = share.errno(.fallocate, node: file.nodeid, FuseArgs.build { a in
                a.u64(fh); a.u64(0); a.u64(4 << 20); a.u32(0); a.u32(0)
            })
            #expect(fallocate == 0)
            #expect(share.lstatHost("sparse")?.st_size == 4 << 20)
        }

        @Test func openRespectsTheFileType() throws {
            let share = try FuseTestShare()
            let dir = try share.mkdir("dir")
            #expect(share.openError(dir.nodeid) == EISDIR)
            let (file, _) = try share.create("file")
            #expect(share.errno(.opendir, node: file.nodeid, FuseArgs.build { $0.zeros(8) }) == ENOTDIR)
            // A file handle is not a directory handle, nor the reverse.
            let dh = try share.opendir(dir.nodeid)
            #expect(share.errno(.read, node: dir.nodeid, share.readArgs(fh: dh, size: 10)) == EBADF)
            #expect(share.release(dir.nodeid, fh: dh, directory: true) == 0)
        }

        @Test func aReadOnlyShareRefusesEveryChangeWithEROFS() throws {
            let share = try FuseTestShare(readOnly: true) { path in
                try Data("read me".utf8).write(to: URL(fileURLWithPath: path + "/f"))
                try FileManager.default.createDirectory(atPath: path + "/d", withIntermediateDirectories: false)
            }
            let modeBefore = share.lstatHost("f")?.st_mode
            let file = try share.lookup("f")
            let fh = try share.open(file.nodeid, flags: O_RDONLY)
            #expect(try share.read(file.nodeid, fh: fh) == Array("read me".utf8))
            #expect(share.openError(file.nodeid, flags: O_WRONLY) == EROFS)
            #expect(share.openError(file.nodeid, flags: O_RDWR) == EROFS)
            #expect(share.openError(file.nodeid, flags: O_RDONLY | O_TRUNC) == EROFS)
            #expect(share.errno(.create, FuseArgs.build { a in a.u32(UInt32(O_RDWR | O_CREAT)); a.u32(0o100644); a.zeros(8); a.name("new") }) == EROFS)
            #expect(share.errno(.mkdir, FuseArgs.build { a in a.u32(0o755); a.u32(0); a.name("new") }) == EROFS)
            #expect(share.errno(.unlink, FuseArgs.build { $0.name("f") }) == EROFS)
            #expect(share.errno(.rmdir, FuseArgs.build { $0.name("d") }) == EROFS)
            #expect(share.errno(.rename, FuseArgs.build { a in a.u64(1); a.name("f"); a.name("g") }) == EROFS)
            #expect(share.errno(.symlink, FuseArgs.build { a in a.name("l"); a.name("f") }) == EROFS)
            #expect(share.errno(.link, FuseArgs.build { a in a.u64(file.nodeid); a.name("h") }) == EROFS)
            #expect(share.errno(.setxattr, node: file.nodeid, FuseArgs.build { a in a.u32(1); a.u32(0); a.name("user.a"); a.raw([1]) }) == EROFS)
            #expect(throws: FuseTestFailure.self) { try share.setattr(file.nodeid, valid: FuseConstant.setattrMode, mode: 0o777) }
            #expect(share.errno(.write, node: file.nodeid, FuseArgs.build { a in a.u64(fh); a.u64(0); a.u32(1); a.zeros(20); a.raw([0x78]) }) == EROFS)
            #expect(share.readHost("f") == "read me")
            #expect(share.lstatHost("f")?.st_mode == modeBefore)
            #expect(Set(try FileManager.default.contentsOfDirectory(atPath: share.path)) == ["f", "d"])
        }

        @Test func largeWritesAndReadsRoundTrip() throws {
            let share = try FuseTestShare()
            let (file, fh) = try share.create("big")
            var rng = SplitMix64(seed: 1)
            let data = (0..<(1 << 20)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            #expect(try share.write(file.nodeid, fh: fh, offset: 3 << 30, data) == 1 << 20)
            #expect(share.lstatHost("big")?.st_size == (3 << 30) + (1 << 20))
            #expect(try share.read(file.nodeid, fh: fh, offset: 3 << 30, size: 1 << 20) == data)
        }
    }
}
