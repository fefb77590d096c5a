/// Builds an uncompressed initramfs (cpio "newc", the kernel's
/// Documentation/driver-api/early-userspace/buffer-format.rst). Uncompressed because
/// decompression runs in the guest kernel, which nested hosts emulate.
public struct Initramfs: Sendable {
    public enum Entry: Sendable, Equatable {
        case directory(path: String, mode: UInt32)
        case file(path: String, mode: UInt32, contents: [UInt8])
        case characterDevice(path: String, mode: UInt32, major: UInt32, minor: UInt32)
    }

    public var entries: [Entry] = []
    public init(entries: [Entry] = []) { self.entries = entries }

    /// The minimal image that boots the guest agent: /init plus the mount points and
    /// /dev/console (the kernel opens it for init's stdio before /dev is mounted).
    public static func agentImage(agent: [UInt8]) -> Initramfs {
        Initramfs(entries: [
            .directory(path: "dev", mode: 0o755),
            .characterDevice(path: "dev/console", mode: 0o600, major: 5, minor: 1),
            .directory(path: "proc", mode: 0o555),
            .directory(path: "sys", mode: 0o555),
            .directory(path: "run", mode: 0o755),
            .directory(path: "tmp", mode: 0o1777),
            .file(path: "init", mode: 0o755, contents: agent),
        ])
    }

    public func archive() -> [UInt8] {
        var out: [UInt8] = []
        var inode: UInt32 = 1
        func header(_ name: String, mode: UInt32, size: Int, rdev: (UInt32, UInt32) = (0, 0), links: UInt32 = 1) {
            let fields: [UInt32] = [inode, mode, 0, 0, links, 0, UInt32(size), 0, 0, rdev.0, rdev.1,
                                    UInt32(name.utf8.count + 1), 0]
            out += Array("070701".utf8)
            for f in fields {
                let hex = String(f, radix: 16)
                out += Array((String(repeating: "0", count: 8 - hex.count) + hex).utf8)
            }
            out += Array(name.utf8) + [0]
            pad()
            inode += 1
        }
        func pad() { while out.count % 4 != 0 { out.append(0) } }
        for entry in entries {
            switch entry {
            case let .directory(path, mode):
                header(path, mode: 0o040000 | mode, size: 0, links: 2)
            case let .characterDevice(path, mode, major, minor):
                header(path, mode: 0o020000 | mode, size: 0, rdev: (major, minor))
            case let .file(path, mode, contents):
                header(path, mode: 0o100000 | mode, size: contents.count)
                out += contents
                pad()
            }
        }
        inode = 0
        header("TRAILER!!!", mode: 0, size: 0, links: 1)
        return out
    }
}
