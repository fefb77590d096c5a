import Testing
import Foundation
import Synchronization
import AgentProtocol
@testable import VMM

/// A real Linux guest uses the VMM's virtio-fs shares: the guest's root is a host
/// directory (a busybox tree, as a bundle's rootfs would be), and two more shares are
/// mounted read-write and read-only. One boot runs a shell script as init and the
/// test checks both what the guest printed and what landed on the host.
extension VMBootTests {
    @Suite struct VirtioFsGuestTests {
        static let applets = ["sh", "ls", "cat", "echo", "mkdir", "mv", "rm", "rmdir", "ln", "readlink", "mount",
                              "reboot", "sync", "tr", "touch", "stat", "wc", "dd", "head"]

        struct Tree {
            let top: URL
            var rootfs: URL { top.appendingPathComponent("rootfs") }
            var data: URL { top.appendingPathComponent("data") }
            var readOnly: URL { top.appendingPathComponent("ro") }
        }

        static func makeTree(script: String) throws -> Tree {
            let fm = FileManager.default
            let tree = Tree(top: fm.temporaryDirectory.appendingPathComponent("sm-runc-fs-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"))
            for dir in ["bin", "dev", "proc", "sys", "tmp", "mnt/data", "mnt/ro"] {
                try fm.createDirectory(at: tree.rootfs.appendingPathComponent(dir), withIntermediateDirectories: true)
            }
            try fm.createDirectory(at: tree.data, withIntermediateDirectories: true)
            try fm.createDirectory(at: tree.readOnly, withIntermediateDirectories: true)
            try fm.copyItem(atPath: "/bin/busybox", toPath: tree.rootfs.appendingPathComponent("bin/busybox").path)
            for applet in applets {
                try fm.createSymbolicLink(atPath: tree.rootfs.appendingPathComponent("bin/\(applet)").path, withDestinationPath: "busybox")
            }
            try "written by the host\n".write(to: tree.rootfs.appendingPathComponent("hostfile.txt"), atomically: false, encoding: .utf8)
            try fm.createSymbolicLink(atPath: tree.rootfs.appendingPathComponent("escape").path, withDestinationPath: "/")
            try fm.createSymbolicLink(atPath: tree.rootfs.appendingPathComponent("dotdot").path, withDestinationPath: "../../../../..")
            try "read-only share\n".write(to: tree.readOnly.appendingPathComponent("keep.txt"), atomically: false, encoding: .utf8)
            try script.write(to: tree.rootfs.appendingPathComponent("run.sh"), atomically: false, encoding: .utf8)
            return tree
        }

        static let script = """
            #!/bin/sh
            echo "LS $(ls / | tr '\\n' ' ')"
            echo "HOSTFILE $(cat /hostfile.txt)"
            echo "guest wrote this" > /guestfile.txt
            mkdir /newdir && echo one > /newdir/a && mv /newdir/a /newdir/b && echo "RENAMED $(cat /newdir/b)"
            echo gone > /deleteme && rm /deleteme && echo "DELETED $(ls /deleteme 2>&1 | wc -l)"
            ln -s hostfile.txt /link && echo "SYMLINK $(readlink /link) $(cat /link)"
            ln /guestfile.txt /hardlink && echo "LINKS $(stat -c %h /guestfile.txt)"
            echo "ESCAPE $(ls /escape/ | tr '\\n' ' ')"
            echo "DOTDOT $(ls /dotdot/ | tr '\\n' ' ')"
            echo "PARENT $(ls /../../ | tr '\\n' ' ')"
            dd if=/dev/zero of=/big bs=65536 count=64 2>/dev/null && echo "BIG $(stat -c %s /big)"
            mount -t virtiofs data /mnt/data && echo "from the guest" > /mnt/data/new.txt && echo "RW ok"
            mount -t virtiofs ro /mnt/ro -o ro && echo "ROREAD $(cat /mnt/ro/keep.txt)"
            if echo nope > /mnt/ro/nope.txt; then echo "ROWRITE succeeded"; else echo "ROWRITE failed"; fi
            sync
            echo "DONE"
            reboot -f
            """

        @Test func theGuestWorksOnItsRootAndBindShares() throws {
            try requireKVM()
            let tree = try Self.makeTree(script: Self.script)
            defer { try? FileManager.default.removeItem(at: tree.top) }
            let console = GuestBootTests.Console()
            var configuration = MachineConfiguration(kernelPath: try GuestArtifacts.kernel())
            configuration.shares = [
                .init(tag: "rootfs", hostPath: tree.rootfs.path, readOnly: false),
                .init(tag: "data", hostPath: tree.data.path, readOnly: false),
                .init(tag: "ro", hostPath: tree.readOnly.path, readOnly: true),
            ]
            configuration.rootShare = ("rootfs", "/bin/sh")
            configuration.extraKernelParameters = ["--", "/run.sh"]
            configuration.deadlineSeconds = GuestBootTests.deadline
            configuration.consoleOutput = { bytes in console.bytes.withLock { $0 += bytes } }
            let report = try Machine(configuration).run()
            let text = console.text
            try? text.write(toFile: NSTemporaryDirectory() + "sm-runc-virtiofs-guest-console.txt", atomically: false, encoding: .utf8)
            #expect(report.exit == .reset, "console:\n\(text)")
            func line(_ key: String) -> String? {
                text.split(whereSeparator: \.isNewline).first { $0.hasPrefix(key + " ") }.map { String($0.dropFirst(key.count + 1)) }
            }
            // Listing and reading what the host put there.
            #expect(line("LS")?.contains("hostfile.txt") == true, "\(text)")
            #expect(line("HOSTFILE") == "written by the host")
            // Writes, renames, deletions, links: seen on the host.
            let fm = FileManager.default
            #expect(try String(contentsOf: tree.rootfs.appendingPathComponent("guestfile.txt"), encoding: .utf8) == "guest wrote this\n")
            #expect(line("RENAMED") == "one")
            #expect(fm.fileExists(atPath: tree.rootfs.appendingPathComponent("newdir/b").path))
            #expect(!fm.fileExists(atPath: tree.rootfs.appendingPathComponent("newdir/a").path))
            #expect(line("DELETED") == "1")   // ls prints one "No such file" line
            #expect(!fm.fileExists(atPath: tree.rootfs.appendingPathComponent("deleteme").path))
            #expect(line("SYMLINK") == "hostfile.txt written by the host")
            #expect(try fm.destinationOfSymbolicLink(atPath: tree.rootfs.appendingPathComponent("link").path) == "hostfile.txt")
            #expect(line("LINKS") == "2")
            #expect(line("BIG") == "4194304")
            #expect((try fm.attributesOfItem(atPath: tree.rootfs.appendingPathComponent("big").path)[.size] as? Int) == 4_194_304)
            // Symlinks to / and ../.. resolve inside the guest's root, never the host's.
            for key in ["ESCAPE", "DOTDOT", "PARENT"] {
                let listing = line(key) ?? ""
                #expect(listing.contains("hostfile.txt") && listing.contains("run.sh"), "\(key): \(listing)")
                #expect(!listing.contains("usr") && !listing.contains("etc"), "\(key) reached the host: \(listing)")
            }
            // A read-write share and a read-only one.
            #expect(line("RW") == "ok")
            #expect(try String(contentsOf: tree.data.appendingPathComponent("new.txt"), encoding: .utf8) == "from the guest\n")
            #expect(line("ROREAD") == "read-only share")
            #expect(line("ROWRITE") == "failed")
            #expect(text.contains("Read-only file system"), "\(text)")
            #expect(!fm.fileExists(atPath: tree.readOnly.appendingPathComponent("nope.txt").path))
            #expect(line("DONE") != nil || text.contains("DONE"))
        }
    }
}
