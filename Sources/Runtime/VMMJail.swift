import Foundation
import OCIBundle
import VMM
import CSeccomp

/// The VMM's jail for one container (`VMM.Jail`): what it holds, decided here once.
///
/// - every directory the machine's virtio-fs devices serve (the rootfs, the bind
///   staging directory `<state>/binds` with the staged bind mounts below it, the
///   agent's `sm-guest` directory), recursively, read-only when the share is;
/// - the state directory alone (not what is mounted below it): `state.json`, the
///   control socket made once the container is created, the vsock host sockets;
/// - the `--log` file, if any (the reporter opens it per line).
///
/// Each keeps its host path inside the jail, so nothing else changes. Entered after
/// everything that needs the host is done (kernel and snapshot read, /dev/kvm open,
/// cgroup joined, prestart/createRuntime hooks run) and before the capabilities are
/// dropped (mounting needs CAP_SYS_ADMIN). Skipped, with a debug line, when the VMM
/// is not root: an unprivileged VMM would need a user namespace, and then its file
/// server's chown for the guest's users would be limited to the namespace's map.
extension ContainerHost {
    /// Builds the jail, moves the shares' descriptors into it, pivots.
    package func enterJail(logPath: String?) throws {
        if ProcessInfo.processInfo.environment["SM_RUNC_VMM_JAIL"] == "off" {
            reporter.warning("VMM jail disabled by SM_RUNC_VMM_JAIL=off (diagnosis and measurement only)")
            return
        }
        guard geteuid() == 0 else {
            reporter.debug("VMM jail skipped: the VMM is not root (no mount namespace without CAP_SYS_ADMIN)")
            return
        }
        let began = ProcessInfo.processInfo.systemUptime
        let cwd = FileManager.default.currentDirectoryPath
        let jail = Self.jail(shares: machine.sharedDirectories, stateDirectory: Self.absolute(state.path, cwd: cwd),
                             logPath: logPath.map { Self.absolute($0, cwd: cwd) }, workingDirectory: cwd)
        if let logPath {
            // The log file is a bind mount point: it must exist.
            let fd = open(Self.absolute(logPath, cwd: cwd), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
            if fd >= 0 { close(fd) }
        }
        do {
            try jail.build()
            try machine.moveShares(into: jail)
            try jail.pivot()
        } catch {
            throw RuntimeError("VMM jail: \(error)")
        }
        let ms = (ProcessInfo.processInfo.systemUptime - began) * 1000
        reporter.debug("VMM jailed in \(formatFixed(ms, digits: 1)) ms: root a tmpfs holding \(jail.entries.map(\.path).joined(separator: ", ")) and /proc/self/fd")
    }

    /// The jail of a VMM serving `shares`, with its state directory and log file
    /// (absolute paths). Its tmpfs is staged on `<state>/jail` (removed after the pivot).
    package static func jail(shares: [(path: String, readOnly: Bool)], stateDirectory: String, logPath: String?,
                     workingDirectory: String?) -> Jail {
        var entries = shares.map { Jail.Entry(path: $0.path, recursive: true, readOnly: $0.readOnly) }
        entries.append(Jail.Entry(path: stateDirectory, recursive: false, readOnly: false))
        if let logPath { entries.append(Jail.Entry(path: logPath, recursive: false, readOnly: false)) }
        return Jail(entries: entries, staging: stateDirectory + "/jail", workingDirectory: workingDirectory)
    }

    package static func absolute(_ path: String, cwd: String) -> String {
        path.hasPrefix("/") ? path : (cwd == "/" ? "" : cwd) + "/" + path
    }
}

/// The capabilities the VMM keeps once the guest runs: of the five the file server
/// may use (`Privileges.fileServerCapabilities`), CHOWN, DAC_OVERRIDE and FOWNER
/// always (it creates every file as root and hands it to the guest's user; without
/// them a container's non-root user could not create a file), FSETID and MKNOD only
/// when the spec grants them to the container (its bounding set): without MKNOD the
/// host kernel refuses the guest's device nodes (EPERM), without FSETID the file
/// server refuses setuid/setgid files (`PassthroughFileSystem.allowsSetID`).
///
/// One exception, as runc: the runtime makes the spec's device nodes (/dev/null...)
/// whatever the process's capabilities. With a tmpfs at /dev (runc's, podman's and
/// containerd's specs) the agent makes them there, in the guest. Without one they
/// land in the rootfs share: then the VMM keeps MKNOD, and the file server takes
/// device nodes only until the container is created (`setUpMakesDevices`).
package enum VMMCapabilities {
    package static let always: Set<String> = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER"]
    package static let onlyIfGranted: Set<String> = ["CAP_FSETID", "CAP_MKNOD"]

    package static func granted(_ name: String, to process: Spec.Process?) -> Bool {
        (process?.capabilities?.bounding ?? []).contains { $0.rawValue == name }
    }

    /// Whether the agent's set-up makes device nodes through the rootfs share: no
    /// tmpfs mounted at /dev.
    package static func setUpMakesDevices(_ spec: Spec) -> Bool {
        !(spec.mounts ?? []).contains { mount in
            mount.destination.split(separator: "/").joined(separator: "/") == "dev" && mount.type == "tmpfs"
        }
    }

    package static func kept(for spec: Spec) -> [(cap: cap_value_t, name: String, why: String)] {
        Privileges.fileServerCapabilities.filter {
            always.contains($0.name) || granted($0.name, to: spec.process)
                || ($0.name == "CAP_MKNOD" && setUpMakesDevices(spec))
        }
    }
}
