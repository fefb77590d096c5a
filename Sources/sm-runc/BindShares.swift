import Foundation

/// Host bind mounts staged under `<state>/binds` for the guest's "binds" share.
enum BindShares {
    /// Unmounts and removes the staging entries; unlink/rmdir only, never recursive.
    static func release(stateDirectory: String) {
        let directory = stateDirectory + "/binds"
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return }
        for name in names {
            let entry = directory + "/" + name
            while umount2(entry, Int32(MNT_DETACH)) == 0 {}
            if unlink(entry) != 0 { rmdir(entry) }
        }
        rmdir(directory)
    }
}
