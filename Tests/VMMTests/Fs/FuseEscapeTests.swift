import Testing
import Foundation
#if canImport(Glibc)
import Glibc
#endif
@testable import VMM

extension FuseTests {
    /// A guest path never reaches outside its share: "..", symlinks pointing out,
    /// names with '/', and a directory or file swapped for a symlink on the host
    /// between LOOKUP and OPEN. Each share has a sibling `secret` file next to it.
    @Suite struct EscapeTests {
        @Test func dotDotOfTheRootIsTheRoot() throws {
            let share = try FuseTestShare()
            let up = try share.lookup("..")
            #expect(up.nodeid == 1)
            #expect(up.attr.ino == UInt64(share.lstatHost(".")!.st_ino))
            #expect(share.lookupError("secret") == ENOENT)
            // "." is the directory itself.
            #expect(try share.lookup(".").nodeid == 1)
            // ".." anywhere else is not offered (the guest resolves it itself).
            let dir = try share.mkdir("dir")
            #expect(share.lookupError("..", in: dir.nodeid) == EINVAL)
        }

        @Test(arguments: ["../secret", "../../etc/passwd", "dir/../../secret", "/etc/passwd"])
        func multiComponentNamesAreRefused(name: String) throws {
            let share = try FuseTestShare()
            _ = try share.mkdir("dir")
            #expect(share.lookupError(name) == EINVAL)
            #expect(share.errno(.unlink, FuseArgs.build { $0.name(name) }) == EINVAL)
            #expect(share.errno(.rename, FuseArgs.build { a in a.u64(1); a.name("dir"); a.name(name) }) == EINVAL)
            #expect(share.errno(.symlink, FuseArgs.build { a in a.name(name); a.name("x") }) == EINVAL)
            #expect(FileManager.default.fileExists(atPath: share.secretPath))
        }

        @Test func aSymlinkToRootIsReturnedAsASymlinkAndNeverFollowed() throws {
            let share = try FuseTestShare()
            #expect(Glibc.symlink("/", share.host("root-link")) == 0)
            let link = try share.lookup("root-link")
            #expect(link.attr.type == UInt32(S_IFLNK))
            #expect(try share.readlink(link.nodeid) == "/")
            // Resolving beneath it is the guest's job: the server refuses.
            #expect(share.lookupError("etc", in: link.nodeid) == ENOTDIR)
            #expect(share.errno(.opendir, node: link.nodeid, FuseArgs.build { $0.zeros(8) }) == ENOTDIR)
            #expect(share.openError(link.nodeid) == ELOOP)
            #expect(share.errno(.mkdir, node: link.nodeid, FuseArgs.build { a in a.u32(0o755); a.u32(0); a.name("x") }) == ENOTDIR)
            #expect(share.errno(.create, node: link.nodeid, FuseArgs.build { a in a.zeros(16); a.name("x") }) == ENOTDIR)
        }

        @Test func aSymlinkOutOfTheShareCannotBeOpenedOrWrittenThrough() throws {
            let share = try FuseTestShare()
            #expect(Glibc.symlink("../secret", share.host("out")) == 0)
            let link = try share.lookup("out")
            #expect(link.attr.type == UInt32(S_IFLNK))
            #expect(share.openError(link.nodeid, flags: O_WRONLY | O_TRUNC) == ELOOP)
            // CREATE on the symlink's name does not write through it.
            #expect(share.errno(.create, FuseArgs.build { a in
                a.u32(UInt32(O_WRONLY | O_CREAT | O_TRUNC)); a.u32(UInt32(S_IFREG) | 0o644); a.zeros(8); a.name("out")
            }) == ELOOP)
            // SETATTR truncate on the link's node refuses; the secret is untouched.
            #expect(throws: FuseTestFailure.self) { try share.setattr(link.nodeid, valid: FuseConstant.setattrSize) }
            #expect(try String(contentsOfFile: share.secretPath, encoding: .utf8) == "outside the share\n")
        }

        @Test func aDirectorySwappedForASymlinkToRootAfterLookupStaysTheOriginalDirectory() throws {
            let share = try FuseTestShare()
            try FileManager.default.createDirectory(atPath: share.host("dir"), withIntermediateDirectories: false)
            try share.writeHost("dir/inside.txt", "original")
            let dir = try share.lookup("dir")

            // The host swaps the directory for a symlink to / between LOOKUP and OPENDIR.
            #expect(rename(share.host("dir"), share.host("moved")) == 0)
            #expect(Glibc.symlink("/", share.host("dir")) == 0)

            let names = try share.list(dir.nodeid).map(\.name)
            #expect(Set(names) == [".", "..", "inside.txt"])
            #expect(share.lookupError("etc", in: dir.nodeid) == ENOENT)
            #expect(share.lookupError("proc", in: dir.nodeid) == ENOENT)
            let inside = try share.lookup("inside.txt", in: dir.nodeid)
            let fh = try share.open(inside.nodeid, flags: O_RDONLY)
            #expect(try share.read(inside.nodeid, fh: fh) == Array("original".utf8))
            // Creating through the old nodeid lands in the original directory, not in /.
            _ = try share.create("new.txt", in: dir.nodeid)
            #expect(FileManager.default.fileExists(atPath: share.host("moved/new.txt")))
            #expect(!FileManager.default.fileExists(atPath: "/new.txt"))
            // A fresh LOOKUP sees the symlink, and cannot go beneath it.
            let fresh = try share.lookup("dir")
            #expect(fresh.nodeid != dir.nodeid && fresh.attr.type == UInt32(S_IFLNK))
            #expect(share.lookupError("etc", in: fresh.nodeid) == ENOTDIR)
        }

        @Test func aFileSwappedForASymlinkAfterLookupOpensTheOriginalFile() throws {
            let share = try FuseTestShare()
            try share.writeHost("file", "mine")
            let file = try share.lookup("file")
            #expect(rename(share.host("file"), share.host("file.old")) == 0)
            #expect(Glibc.symlink("../secret", share.host("file")) == 0)
            let fh = try share.open(file.nodeid, flags: O_RDWR)
            #expect(try share.read(file.nodeid, fh: fh) == Array("mine".utf8))
            _ = try share.write(file.nodeid, fh: fh, Array("MINE".utf8))
            #expect(share.readHost("file.old") == "MINE")
            #expect(try String(contentsOfFile: share.secretPath, encoding: .utf8) == "outside the share\n")
        }

        @Test func aHostThreadSwappingADirectoryNeverLetsTheGuestOut() throws {
            // The swap races LOOKUP/OPENDIR/READDIR for a while; whatever interleaving
            // happens, no listing contains what lies outside the share.
            let share = try FuseTestShare()
            try FileManager.default.createDirectory(atPath: share.host("dir"), withIntermediateDirectories: false)
            try share.writeHost("dir/inside.txt", "x")
            let stop = SwapFlag()
            let (dirPath, asidePath, linkPath) = (share.host("dir"), share.host("aside"), share.host("link"))
            #expect(Glibc.symlink(share.top, linkPath) == 0)
            let swapper = try OSThreadSwapper(stop: stop) {
                // Directory out, symlink to the share's parent (holding `secret`) in; then back.
                _ = rename(dirPath, asidePath)
                _ = rename(linkPath, dirPath)
                _ = rename(dirPath, linkPath)
                _ = rename(asidePath, dirPath)
            }
            defer { stop.set(); swapper.join() }
            var sawInside = 0
            for _ in 0..<2000 {
                guard let entry = try? share.lookup("dir") else { continue }
                defer { share.forget(entry.nodeid, 1) }
                if entry.attr.type == UInt32(S_IFLNK) {
                    #expect(share.lookupError("secret", in: entry.nodeid) == ENOTDIR)
                    continue
                }
                guard let names = try? share.list(entry.nodeid).map(\.name) else { continue }
                #expect(!names.contains("secret") && !names.contains("share"))
                if names.contains("inside.txt") { sawInside += 1 }
            }
            #expect(sawInside > 0)
        }

        @Test func hostileMessagesStayInsideTheShare() throws {
            // Mutated valid requests, served for real: whatever they do, they do it
            // inside the share; the sibling file survives and the server keeps answering.
            let share = try FuseTestShare()
            try FileManager.default.createDirectory(atPath: share.host("d"), withIntermediateDirectories: false)
            try share.writeHost("d/f", "data")
            let dir = try share.lookup("d").nodeid
            let file = try share.lookup("f", in: dir).nodeid
            let fh = try share.open(file)
            let seeds: [[UInt8]] = [
                fuseMessage(.lookup, node: dir, FuseArgs.build { $0.name("f") }),
                fuseMessage(.unlink, node: dir, FuseArgs.build { $0.name("g") }),
                fuseMessage(.rename, node: dir, FuseArgs.build { a in a.u64(1); a.name("f"); a.name("h") }),
                fuseMessage(.read, node: file, share.readArgs(fh: fh, size: 64)),
                fuseMessage(.mkdir, node: dir, FuseArgs.build { a in a.u32(0o755); a.u32(0); a.name("m") }),
                fuseMessage(.symlink, node: 1, FuseArgs.build { a in a.name("s"); a.name("/") }),
                fuseMessage(.forget, node: file, FuseArgs.build { $0.u64(1) }),
                fuseMessage(.setattr, node: file, FuseArgs.build { a in a.u32(8); a.zeros(84) }),
            ]
            var rng = SplitMix64(seed: 42)
            for _ in 0..<5000 {
                var bytes = seeds[Int(rng.next() % UInt64(seeds.count))]
                for _ in 0..<(1 + rng.next() % 3) {
                    let at = 8 + Int(rng.next() % UInt64(bytes.count - 8))  // keep len and opcode mostly sane
                    bytes[at] = UInt8(truncatingIfNeeded: rng.next())
                }
                if let reply = share.server.handle(bytes, arrivedLength: bytes.count) {
                    #expect(reply.count >= 16 && Int(FuseTestReply(reply).length) == reply.count)
                }
            }
            #expect(try String(contentsOfFile: share.secretPath, encoding: .utf8) == "outside the share\n")
            let siblings = try FileManager.default.contentsOfDirectory(atPath: share.top)
            #expect(Set(siblings) == ["share", "secret"])
            _ = try share.getattr(1)
        }
    }
}

/// A stop flag shared with the swapping thread.
final class SwapFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var stopped = false
    func set() { lock.withLock { stopped = true } }
    var isSet: Bool { lock.withLock { stopped } }
}

/// Runs `body` in a loop on its own thread until `stop` is set.
final class OSThreadSwapper: Sendable {
    private let thread: OSThread
    init(stop: SwapFlag, _ body: @escaping @Sendable () -> Void) throws {
        thread = OSThread(name: "fuse-swapper") {
            while !stop.isSet { body() }
        }
        try thread.start()
    }
    func join() { thread.join() }
}
