import Testing
import Foundation
#if canImport(Glibc)
import Glibc
#endif
@testable import VMM

/// Whether the filesystem holding /tmp accepts user.* extended attributes.
private let userXattrsSupported: Bool = {
    let path = "/tmp/sm-runc-xattr-probe-\(getpid())"
    guard FileManager.default.createFile(atPath: path, contents: nil) else { return false }
    defer { unlink(path) }
    let setxattr = Linux.setxattr
    return setxattr(path, "user.probe", "1", 1, 0) == 0
}()

extension FuseTests {
    /// SETATTR, extended attributes, STATFS and ACCESS, checked on the host.
    @Suite struct AttributeTests {
        @Test func setattrChmodChownTruncateAndTimes() throws {
            let share = try FuseTestShare()
            try share.writeHost("f", "0123456789")
            let node = try share.lookup("f").nodeid

            var attr = try share.setattr(node, valid: FuseConstant.setattrMode, mode: UInt32(S_IFREG) | 0o4711)
            #expect(attr.mode == UInt32(S_IFREG | 0o4711))
            #expect(share.lstatHost("f")?.st_mode == S_IFREG | 0o4711)

            attr = try share.setattr(node, valid: FuseConstant.setattrUID | FuseConstant.setattrGID, uid: 1234, gid: 5678)
            #expect(attr.uid == 1234 && attr.gid == 5678)
            #expect(share.lstatHost("f")?.st_uid == 1234 && share.lstatHost("f")?.st_gid == 5678)
            // Only the group: the owner stays.
            attr = try share.setattr(node, valid: FuseConstant.setattrGID, gid: 9)
            #expect(attr.uid == 1234 && attr.gid == 9)

            attr = try share.setattr(node, valid: FuseConstant.setattrSize, size: 3)
            #expect(attr.size == 3)
            #expect(share.readHost("f") == "012")

            attr = try share.setattr(node, valid: FuseConstant.setattrATime | FuseConstant.setattrMTime,
                                     atime: (1_000_000_000, 123), mtime: (1_500_000_000, 456_789))
            let host = try #require(share.lstatHost("f"))
            #expect(host.st_atim.tv_sec == 1_000_000_000 && host.st_atim.tv_nsec == 123)
            #expect(host.st_mtim.tv_sec == 1_500_000_000 && host.st_mtim.tv_nsec == 456_789)
            #expect(attr.mtime == 1_500_000_000 && attr.mtimensec == 456_789)

            // MTIME_NOW moves mtime to now and leaves atime alone.
            attr = try share.setattr(node, valid: FuseConstant.setattrMTime | FuseConstant.setattrMTimeNow)
            #expect(abs(Int(attr.mtime) - time(nil)) < 60)
            #expect(share.lstatHost("f")?.st_atim.tv_sec == 1_000_000_000)
        }

        @Test func setattrThroughAnOpenHandle() throws {
            let share = try FuseTestShare()
            let (file, fh) = try share.create("f")
            _ = try share.write(file.nodeid, fh: fh, Array("abcdef".utf8))
            let attr = try share.setattr(file.nodeid, valid: FuseConstant.setattrSize | FuseConstant.setattrFH | FuseConstant.setattrMode,
                                         fh: fh, size: 2, mode: 0o600)
            #expect(attr.size == 2 && attr.mode & 0o7777 == 0o600)
            #expect(share.readHost("f") == "ab")
        }

        @Test func truncatingADirectoryOrASymlinkFails() throws {
            let share = try FuseTestShare()
            let dir = try share.mkdir("d")
            let link = try share.symlink("l", to: "/etc/passwd")
            #expect(throws: FuseTestFailure.self) { try share.setattr(dir.nodeid, valid: FuseConstant.setattrSize) }
            #expect(throws: FuseTestFailure.self) { try share.setattr(link.nodeid, valid: FuseConstant.setattrSize) }
        }

        @Test func symlinkTimesAndOwnerChangeTheLinkNotItsTarget() throws {
            let share = try FuseTestShare()
            try share.writeHost("target", "t")
            let before = try #require(share.lstatHost("target"))
            let link = try share.symlink("l", to: "target")
            _ = try share.setattr(link.nodeid, valid: FuseConstant.setattrUID, uid: 99)
            _ = try share.setattr(link.nodeid, valid: FuseConstant.setattrMTime, mtime: (1_234_567_890, 0))
            #expect(share.lstatHost("l")?.st_uid == 99)
            #expect(share.lstatHost("l")?.st_mtim.tv_sec == 1_234_567_890)
            let after = try #require(share.lstatHost("target"))
            #expect(after.st_uid == before.st_uid && after.st_mtim.tv_sec == before.st_mtim.tv_sec)
        }

        @Test(.enabled(if: userXattrsSupported, "the filesystem under /tmp refuses user.* xattrs"))
        func xattrRoundTrip() throws {
            let share = try FuseTestShare()
            try share.writeHost("f", "x")
            let node = try share.lookup("f").nodeid
            let value = Array("value-☃".utf8)
            _ = try share.ok(.setxattr, node: node, FuseArgs.build { a in
                a.u32(UInt32(value.count)); a.u32(0); a.name("user.test"); a.raw(value)
            })
            // Size probe, then the value, then a buffer too small.
            let probe = try share.ok(.getxattr, node: node, FuseArgs.build { a in a.u32(0); a.u32(0); a.name("user.test") })
            #expect(probe.payload.count == 8 && probe.p32(0) == UInt32(value.count))
            let got = try share.ok(.getxattr, node: node, FuseArgs.build { a in a.u32(100); a.u32(0); a.name("user.test") })
            #expect(got.payload == value)
            #expect(share.errno(.getxattr, node: node, FuseArgs.build { a in a.u32(2); a.u32(0); a.name("user.test") }) == ERANGE)
            // XATTR_CREATE on an existing name.
            #expect(share.errno(.setxattr, node: node, FuseArgs.build { a in a.u32(1); a.u32(1); a.name("user.test"); a.raw([1]) }) == EEXIST)
            // The host sees it.
            var buffer = [UInt8](repeating: 0, count: 64)
            let n = Linux.getxattr(share.host("f"), "user.test", &buffer, 64)
            #expect(Array(buffer.prefix(max(n, 0))) == value)

            let listProbe = try share.ok(.listxattr, node: node, FuseArgs.build { a in a.u32(0); a.u32(0) })
            let list = try share.ok(.listxattr, node: node, FuseArgs.build { a in a.u32(listProbe.p32(0)); a.u32(0) })
            #expect(list.payload.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }.contains("user.test"))

            _ = try share.ok(.removexattr, node: node, FuseArgs.build { $0.name("user.test") })
            #expect(share.errno(.getxattr, node: node, FuseArgs.build { a in a.u32(0); a.u32(0); a.name("user.test") }) == ENODATA)
            #expect(share.errno(.removexattr, node: node, FuseArgs.build { $0.name("user.test") }) == ENODATA)
        }

        @Test func statfsDescribesTheHostFilesystem() throws {
            let share = try FuseTestShare()
            let reply = try share.ok(.statfs)
            #expect(reply.payload.count == 80)
            var host = statvfs()
            #expect(statvfs(share.path, &host) == 0)
            #expect(reply.p64(0) == UInt64(host.f_blocks))
            #expect(reply.p32(40) == UInt32(host.f_bsize))
            #expect(reply.p32(44) == UInt32(host.f_namemax))
            #expect(reply.p64(0) > 0)
            // FUSE_SYNCFS reaches the host filesystem.
            #expect(share.errno(.syncfs, FuseArgs.build { $0.u64(0) }) == 0)
        }

        @Test func accessChecksPermissionBits() throws {
            let share = try FuseTestShare()
            let (file, _) = try share.create("private", mode: 0o600, uid: 1000, gid: 1000)
            func access(_ mask: Int32, uid: UInt32, gid: UInt32 = 2000) -> Int32? {
                share.send(.access, node: file.nodeid, uid: uid, gid: gid, FuseArgs.build { $0.u32(UInt32(mask)); $0.u32(0) })?.error
            }
            #expect(access(R_OK | W_OK, uid: 1000) == 0)
            #expect(access(X_OK, uid: 1000) == EACCES)
            #expect(access(R_OK, uid: 1001) == EACCES)
            #expect(access(F_OK, uid: 1001) == 0)
            #expect(access(R_OK | W_OK, uid: 0) == 0)
            #expect(access(X_OK, uid: 0) == EACCES)            // nobody may execute it
        }
    }
}
