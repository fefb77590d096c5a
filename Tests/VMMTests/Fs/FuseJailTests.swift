import Testing
import Foundation
#if canImport(Glibc)
import Glibc
#endif
@testable import VMM

extension FuseTests {
    /// What the jail changes for the file server: set-ID files and device nodes only
    /// when the container's spec grants them, and a share moved to another path of the
    /// same directory keeps the guest's inodes and open files.
    @Suite struct JailTests {
        @Test func setIDFilesAreRefusedUnlessGranted() throws {
            let share = try FuseTestShare()
            share.fileSystem.allowsSetID = false
            try share.writeHost("f", "x")
            let node = try share.lookup("f").nodeid
            #expect(share.errno(.setattr, node: node, FuseArgs.build { a in
                a.u32(FuseConstant.setattrMode); a.u32(0); a.u64(0); a.u64(0); a.u64(0)
                a.u64(0); a.u64(0); a.u64(0)
                a.u32(0); a.u32(0); a.u32(0)
                a.u32(UInt32(S_IFREG) | 0o4755); a.u32(0); a.u32(0); a.u32(0); a.u32(0)
            }) == EPERM)
            #expect(try share.setattr(node, valid: FuseConstant.setattrMode, mode: UInt32(S_IFREG) | 0o755).mode & 0o7777 == 0o755)
            #expect(share.lstatHost("f")?.st_mode == S_IFREG | 0o755)
            // CREATE and MKNOD asking for set-ID bits.
            #expect(share.errno(.create, FuseArgs.build { a in
                a.u32(UInt32(O_RDWR)); a.u32(UInt32(S_IFREG) | 0o2755); a.u32(0); a.u32(0); a.name("g")
            }) == EPERM)
            #expect(share.errno(.mknod, FuseArgs.build { a in
                a.u32(UInt32(S_IFREG) | 0o4755); a.u32(0); a.u32(0); a.u32(0); a.name("m")
            }) == EPERM)
            #expect(share.lstatHost("g") == nil && share.lstatHost("m") == nil)
            // A set-group-ID directory only passes its group on: allowed.
            _ = share.entry(try share.ok(.mkdir, FuseArgs.build { a in a.u32(0o2755); a.u32(0); a.name("d") }))
            #expect(share.lstatHost("d")?.st_mode == S_IFDIR | 0o2755)
            // Granted: as before.
            share.fileSystem.allowsSetID = true
            #expect(try share.setattr(node, valid: FuseConstant.setattrMode, mode: UInt32(S_IFREG) | 0o4755).mode & 0o7777 == 0o4755)
        }

        @Test func deviceNodesAreRefusedUnlessGranted() throws {
            let share = try FuseTestShare()
            share.fileSystem.allowsDevices = false
            // 254:0, the host disk's numbers on these machines.
            for type in [S_IFBLK, S_IFCHR] {
                #expect(share.errno(.mknod, FuseArgs.build { a in
                    a.u32(UInt32(type) | 0o600); a.u32(UInt32(254 << 8)); a.u32(0); a.u32(0); a.name("disk")
                }) == EPERM)
            }
            #expect(share.lstatHost("disk") == nil)
            // FIFOs and sockets need no capability.
            _ = share.entry(try share.ok(.mknod, FuseArgs.build { a in
                a.u32(UInt32(S_IFIFO) | 0o600); a.u32(0); a.u32(0); a.u32(0); a.name("fifo")
            }))
            #expect(share.lstatHost("fifo")?.st_mode == S_IFIFO | 0o600)
        }

        @Test func aRerootedShareKeepsTheGuestsInodesAndOpenFiles() throws {
            let share = try FuseTestShare()
            try FileManager.default.createDirectory(atPath: share.host("sub"), withIntermediateDirectories: false)
            try share.writeHost("sub/f", "kept across the move\n")
            let directory = try share.lookup("sub").nodeid
            let file = try share.lookup("f", in: directory).nodeid
            let fh = try share.open(file, flags: O_RDONLY)
            // Another path of the same directory (a symlink to it stands in for the jail's bind mount).
            let alias = share.top + "/alias"
            #expect(symlink(share.path, alias) == 0)
            try share.fileSystem.reroot(to: alias + "/.")
            #expect(try share.read(file, fh: fh) == Array("kept across the move\n".utf8))
            #expect(try share.lookup("f", in: directory).nodeid == file)
            #expect(share.fileSystem.heldDescriptors == 3, "the old descriptors' room was given back")
            // Another directory is refused.
            #expect(throws: SnapshotError.self) { try share.fileSystem.reroot(to: share.top) }
        }
    }
}
