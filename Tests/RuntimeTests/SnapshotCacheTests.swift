import Testing
import Foundation
@testable import VMM
@testable import Runtime

extension RuntimeTests {
    /// The snapshot cache trusts nothing it did not check on an open fd: the cache
    /// root's owner and mode, the snapshots directory (never through a symlink), each
    /// snapshot file (opened with O_NOFOLLOW, then checked by fstat).
    @Suite struct SnapshotCacheTests {
        /// `<tmp>/cache`, not made yet, in a fresh private directory.
        static func cache() throws -> (TemporaryDirectory, String) {
            let top = try TemporaryDirectory("sm-runc-cache")
            return (top, top.path + "/cache")
        }

        static func mode(_ path: String) -> mode_t? { lstatus(path).map { $0.st_mode & 0o7777 } }

        /// The error `body` throws, as text ("" when it does not throw).
        static func failure(_ body: () throws -> Void) -> String {
            do { try body() } catch { return "\(error)" }
            return ""
        }

        @Test func aFreshCacheIsMadePrivateAndAnOpenSnapshotsDirectoryIsClosed() throws {
            let (top, root) = try Self.cache()
            _ = try SnapshotCache.openDirectory(root: root, create: true)
            #expect(Self.mode(root) == 0o755)
            #expect(Self.mode(root + "/snapshots") == 0o700)
            #expect(chmod(root + "/snapshots", 0o755) == 0)
            _ = try SnapshotCache.openDirectory(root: root, create: false)
            #expect(Self.mode(root + "/snapshots") == 0o700)
            withExtendedLifetime(top) {}
        }

        @Test func aSymlinkedSnapshotsDirectoryIsRefusedAndWhatItPointsAtIsLeftAlone() throws {
            let (top, root) = try Self.cache()
            let elsewhere = top.path + "/elsewhere"
            #expect(mkdir(root, 0o755) == 0 && mkdir(elsewhere, 0o755) == 0 && chmod(elsewhere, 0o755) == 0)
            #expect(symlink(elsewhere, root + "/snapshots") == 0)
            let error = Self.failure { _ = try SnapshotCache.openDirectory(root: root, create: true) }
            #expect(error.contains("open \(root)/snapshots") && error.contains("a symlink is not followed"), "\(error)")
            // Not chmod-ed through the symlink.
            #expect(Self.mode(elsewhere) == 0o755)
        }

        @Test func aCacheRootOwnedByAnotherUserIsRefused() throws {
            try requireRoot()
            let (top, root) = try Self.cache()
            _ = try SnapshotCache.openDirectory(root: root, create: true)
            #expect(chown(root, 1, 1) == 0)
            let error = Self.failure { _ = try SnapshotCache.openDirectory(root: root, create: false) }
            #expect(error == "cache root \(root): owned by uid 1, not by \(geteuid()) or root; refused (SM_RUNC_CACHE)")
            withExtendedLifetime(top) {}
        }

        @Test func aCacheRootOthersMayWriteIsRefused() throws {
            let (top, root) = try Self.cache()
            _ = try SnapshotCache.openDirectory(root: root, create: true)
            for mode: mode_t in [0o775, 0o757, 0o1777] {
                #expect(chmod(root, mode) == 0)
                let error = Self.failure { _ = try SnapshotCache.openDirectory(root: root, create: false) }
                #expect(error == "cache root \(root): mode 0\(String(mode, radix: 8)), writable by group or others; refused (SM_RUNC_CACHE)")
            }
            withExtendedLifetime(top) {}
        }

        @Test func aSnapshotFileIsOpenedWithoutFollowingASymlinkAndCheckedOnTheOpenFile() throws {
            try requireRoot()
            let (top, root) = try Self.cache()
            let directory = try SnapshotCache.openDirectory(root: root, create: true)
            let snapshots = root + "/snapshots"
            func open(_ name: String) -> String {
                Self.failure { _ = try SnapshotCache.openOwned(name, in: directory.rawValue, path: snapshots + "/" + name, directory: false) }
            }
            let good = snapshots + "/good.snap"
            #expect(FileManager.default.createFile(atPath: good, contents: Data("snapshot".utf8), attributes: [.posixPermissions: 0o600]))
            #expect(open("good.snap") == "")
            // Swapped for a symlink (to a file that would pass every check itself).
            #expect(rename(good, snapshots + "/kept.snap") == 0 && symlink(snapshots + "/kept.snap", good) == 0)
            #expect(open("good.snap").contains("a symlink is not followed"))
            // Someone else's, readable by others, not a regular file (a FIFO does not block).
            let other = snapshots + "/other.snap"
            #expect(FileManager.default.createFile(atPath: other, contents: Data(), attributes: [.posixPermissions: 0o600]))
            #expect(chown(other, 1, 1) == 0)
            #expect(open("other.snap") == "\(other): owned by uid 1, not \(geteuid())")
            #expect(chmod(snapshots + "/kept.snap", 0o644) == 0)
            #expect(open("kept.snap") == "\(snapshots)/kept.snap: mode 0644, want no access for group or others")
            #expect(mkfifo(snapshots + "/fifo.snap", 0o600) == 0)
            #expect(open("fifo.snap") == "\(snapshots)/fifo.snap: not a regular file")
            withExtendedLifetime(top) {}
        }
    }
}
