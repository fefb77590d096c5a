import AgentProtocol
import OCIBundle
import CGuest
import CPosix
#if canImport(Glibc)
import Glibc
#endif

/// Sets up the container's root (the bundle rootfs share) and its mounts, then runs
/// the process with the spec's user, environment and working directory, relaying its
/// stdio and exit over the channel.
enum Container {
    static let rootTag = GuestLayout.rootfsTag
    static let root = GuestLayout.containerRoot

    /// The host's bind mount sources, one share (see sm-runc's BindShares): bind
    /// sources under `bindsDirectory` come from it. Outside the container's root.
    static let bindsTag = GuestLayout.bindsTag
    static let bindsDirectory = GuestLayout.bindsDirectory

    /// Mounts the rootfs share and the spec's mounts inside it, then, as runc does,
    /// `linux.readonlyPaths`, `linux.maskedPaths` and last `root.readonly`.
    /// What every container needs before there is one: /run (a tmpfs) with the mount
    /// points of the container's root and the bind sources. Done at the agent's start,
    /// so a snapshot holds it done.
    static func prepareMountPoints() -> Bool {
        guard mountFilesystem("tmpfs", at: "/run", type: "tmpfs", flags: UInt(MS_NOSUID | MS_NODEV)) else { return false }
        ensureDirectory(root)
        ensureDirectory(bindsDirectory)
        return true
    }

    static func prepare(_ create: ControlMessage) throws {
        let mounts = create.mounts ?? [], readOnly = create.rootReadonly ?? false
        guard mount(rootTag, root, "virtiofs", 0, nil) == 0 else {
            throw AgentError("mount virtiofs `\(rootTag)` on \(root): \(String(cString: strerror(errno)))")
        }
        if mounts.contains(where: { isBind($0) && ($0.source ?? "").hasPrefix(bindsDirectory + "/") }) {
            guard mount(bindsTag, bindsDirectory, "virtiofs", 0, nil) == 0 else {
                throw AgentError("mount virtiofs `\(bindsTag)` on \(bindsDirectory): \(String(cString: strerror(errno)))")
            }
        }
        for entry in mounts {
            try mountInContainer(entry)
        }
        // /dev as runc makes it, unless the spec binds one in from the host.
        if !mounts.contains(where: { $0.destination == "/dev" && isBind($0) }) {
            try makeDevices(defaultDevices + (create.devices ?? []))
            makeDevLinks()
        }
        makeWorkingDirectory(create.spec?.cwd ?? "/")
        for path in create.readonlyPaths ?? [] {
            try readonlyPath(path)
        }
        for path in create.maskedPaths ?? [] {
            try maskPath(path)
        }
        // root.readonly, as runc does it: mount points are made first, then the root
        // mount (not the ones on top of it) becomes read-only.
        if readOnly, mount(nil, root, nil, UInt(MS_REMOUNT | MS_BIND | MS_RDONLY), nil) != 0 {
            throw AgentError("remount \(root) read-only: \(String(cString: strerror(errno)))")
        }
        try writeSysctls(create.sysctl ?? [:])
    }

    /// The process's working directory, made (as root, 0755) when it does not exist,
    /// as runc does at create. Inside the root (symlinks resolved there), before
    /// `root.readonly` applies.
    static func makeWorkingDirectory(_ cwd: String) {
        guard !cwd.isEmpty, cwd != "/" else { return }
        makeDirectories(resolveInRoot(cwd))
    }

    /// `linux.sysctl`, written to the guest kernel's /proc/sys (the host refused what
    /// runc refuses); a name the kernel lacks fails create with runc's words.
    static func writeSysctls(_ sysctl: [String: String]) throws {
        for (name, value) in sysctl.sorted(by: { $0.key < $1.key }) {
            let path = "/proc/sys/" + name.split(separator: ".", omittingEmptySubsequences: false).joined(separator: "/")
            guard !name.split(separator: ".").contains(".."), !name.contains("/") else {
                throw AgentError("sysctl \(name): not a sysctl name")
            }
            let fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC)
            guard fd >= 0 else { throw AgentError("open \(path): \(String(cString: strerror(errno)).lowercased())") }
            defer { close(fd) }
            var bytes = Array(value.utf8)
            let written = bytes.withUnsafeMutableBytes { write(fd, $0.baseAddress, $0.count) }
            guard written == bytes.count else { throw AgentError("write \(path): \(String(cString: strerror(errno)).lowercased())") }
        }
    }

    /// `path` (absolute, as the container sees it) resolved inside the container's
    /// root, as runc's securejoin does: symlinks are followed with the root as "/",
    /// ".." stops at the root, and components past a missing one are kept as they
    /// are. So a mount on a dangling symlink lands where the link points, inside the
    /// container (runc's behaviour), never on the agent's own tree.
    static func resolveInRoot(_ path: String) -> String {
        var resolved: [String] = []
        var pending = path.split(separator: "/").reversed().map(String.init)
        var links = 0
        var buffer = [CChar](repeating: 0, count: 4097)
        while let part = pending.popLast() {
            if part == "." { continue }
            if part == ".." { _ = resolved.popLast(); continue }
            let candidate = root + "/" + (resolved + [part]).joined(separator: "/")
            var st = stat()
            guard links < 255, lstat(candidate, &st) == 0, st.st_mode & S_IFMT == S_IFLNK else {
                resolved.append(part)
                continue
            }
            links += 1
            let n = readlink(candidate, &buffer, 4096)
            guard n > 0 else { resolved.append(part); continue }
            let target = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            if target.hasPrefix("/") { resolved = [] }
            pending += target.split(separator: "/").reversed().map(String.init)
        }
        return resolved.isEmpty ? root : root + "/" + resolved.joined(separator: "/")
    }

    static func isBind(_ entry: Mount) -> Bool {
        entry.type == "bind" || (entry.options ?? []).contains { $0 == "bind" || $0 == "rbind" }
    }

    /// Mount options as runc reads them: flags, propagation, and the rest as data.
    struct Options {
        var flags: UInt = 0
        var propagation: [UInt] = []
        var data: [String] = []

        init(_ options: [String]) {
            for option in options {
                switch option {
                case "ro": flags |= UInt(MS_RDONLY)
                case "rw", "bind", "rbind": break
                case "nosuid": flags |= UInt(MS_NOSUID)
                case "nodev": flags |= UInt(MS_NODEV)
                case "noexec": flags |= UInt(MS_NOEXEC)
                case "relatime": flags |= UInt(MS_RELATIME)
                case "strictatime": flags |= UInt(MS_STRICTATIME)
                case "noatime": flags |= UInt(MS_NOATIME)
                case "nodiratime": flags |= UInt(MS_NODIRATIME)
                case "private": propagation.append(UInt(MS_PRIVATE))
                case "rprivate": propagation.append(UInt(MS_PRIVATE | MS_REC))
                case "slave": propagation.append(UInt(MS_SLAVE))
                case "rslave": propagation.append(UInt(MS_SLAVE | MS_REC))
                case "shared": propagation.append(UInt(MS_SHARED))
                case "rshared": propagation.append(UInt(MS_SHARED | MS_REC))
                case "unbindable": propagation.append(UInt(MS_UNBINDABLE))
                case "runbindable": propagation.append(UInt(MS_UNBINDABLE | MS_REC))
                default: data.append(option)
                }
            }
        }
    }

    /// One entry of `mounts`: bind mounts (of the host's staged sources under
    /// /run/sm-binds, or of guest paths as given), cgroup as cgroup2, and kernel
    /// filesystems (proc, sysfs, tmpfs, devpts, mqueue) as runc makes them.
    static func mountInContainer(_ entry: Mount) throws {
        let type = entry.type ?? "none"
        let options = Options(entry.options ?? [])
        if isBind(entry) {
            try bindMount(entry, options)
            return
        }
        let target = resolveInRoot(entry.destination)
        if type == "cgroup" || type == "cgroup2" {
            // The guest has one cgroup hierarchy, the unified one (cgroup v1's
            // per-controller mounts are not offered).
            makeDirectories(target)
            guard mount("cgroup2", target, "cgroup2", options.flags, nil) == 0 else {
                if errno == ENODEV {
                    say("sm-init: mount \(entry.destination): the guest kernel has no cgroup2, skipped")
                    return
                }
                throw AgentError("mount cgroup2 on \(entry.destination): \(String(cString: strerror(errno)))")
            }
            try propagate(options, target, entry.destination)
            return
        }
        makeDirectories(target)
        let source = entry.source ?? type
        let result = options.data.isEmpty
            ? mount(source, target, type, options.flags, nil)
            : mount(source, target, type, options.flags, options.data.joined(separator: ","))
        guard result == 0 else {
            throw AgentError("mount \(type) on \(entry.destination): \(String(cString: strerror(errno)))")
        }
        try propagate(options, target, entry.destination)
    }

    /// A bind mount: the target is made as a directory or an empty file, like the
    /// source; MS_REC for rbind; then a remount for `ro` and the other flags (a bind
    /// ignores them on the first mount), as runc does.
    static func bindMount(_ entry: Mount, _ options: Options) throws {
        guard let source = entry.source, !source.isEmpty else {
            throw AgentError("mount to \(entry.destination): a bind mount needs a source")
        }
        let target = resolveInRoot(entry.destination)
        var st = stat()
        guard stat(source, &st) == 0 else {
            throw AgentError("mount \(source) to \(entry.destination): \(String(cString: strerror(errno)))")
        }
        if st.st_mode & S_IFMT == S_IFDIR {
            makeDirectories(target)
        } else {
            makeDirectories(parent(target))
            let fd = open(target, O_WRONLY | O_CREAT | O_CLOEXEC, 0o644)
            if fd >= 0 { close(fd) }
        }
        let recursive = (entry.options ?? []).contains("rbind")
        guard mount(source, target, nil, UInt(MS_BIND) | (recursive ? UInt(MS_REC) : 0), nil) == 0 else {
            throw AgentError("mount \(source) to \(entry.destination): \(String(cString: strerror(errno)))")
        }
        let remount = options.flags & UInt(MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NOATIME | MS_NODIRATIME | MS_RELATIME | MS_STRICTATIME)
        if remount != 0, mount(nil, target, nil, UInt(MS_REMOUNT | MS_BIND) | remount, nil) != 0 {
            throw AgentError("remount \(entry.destination) (\((entry.options ?? []).joined(separator: ","))): \(String(cString: strerror(errno)))")
        }
        try propagate(options, target, entry.destination)
    }

    static func propagate(_ options: Options, _ target: String, _ destination: String) throws {
        for flags in options.propagation where mount(nil, target, nil, flags, nil) != 0 {
            throw AgentError("set propagation of \(destination): \(String(cString: strerror(errno)))")
        }
    }

    /// `linux.readonlyPaths` as runc does it: the path bound onto itself, then
    /// remounted read-only, keeping the nosuid, nodev and noexec it had (statfs). A
    /// missing path is ignored.
    static func readonlyPath(_ path: String) throws {
        let target = root + path
        guard mount(target, target, nil, UInt(MS_BIND | MS_REC), nil) == 0 else {
            if errno == ENOENT { return }
            throw AgentError("readonly path \(path): bind: \(String(cString: strerror(errno)))")
        }
        var fs = statvfs()
        let kept = statvfs(target, &fs) == 0 ? UInt(fs.f_flag) & UInt(MS_NOSUID | MS_NODEV | MS_NOEXEC) : 0
        guard mount(nil, target, nil, UInt(MS_REMOUNT | MS_BIND | MS_RDONLY) | kept, nil) == 0 else {
            throw AgentError("readonly path \(path): remount read-only: \(String(cString: strerror(errno)))")
        }
    }

    /// `linux.maskedPaths` as runc does it: /dev/null bound over a file, an empty
    /// read-only tmpfs over a directory. A missing path is ignored.
    static func maskPath(_ path: String) throws {
        let target = root + path
        if mount("/dev/null", target, nil, UInt(MS_BIND), nil) == 0 { return }
        switch errno {
        case ENOENT:
            return
        case ENOTDIR:
            guard mount("tmpfs", target, "tmpfs", UInt(MS_RDONLY), nil) == 0 else {
                throw AgentError("masked path \(path): mount tmpfs: \(String(cString: strerror(errno)))")
            }
        default:
            throw AgentError("masked path \(path): bind /dev/null: \(String(cString: strerror(errno)))")
        }
    }

    /// runc's default devices: every container has them, whatever linux.devices says.
    static let defaultDevices: [Device] = [
        Device(type: .char, path: "/dev/null", major: 1, minor: 3, fileMode: 0o666, uid: 0, gid: 0),
        Device(type: .char, path: "/dev/random", major: 1, minor: 8, fileMode: 0o666, uid: 0, gid: 0),
        Device(type: .char, path: "/dev/full", major: 1, minor: 7, fileMode: 0o666, uid: 0, gid: 0),
        Device(type: .char, path: "/dev/tty", major: 5, minor: 0, fileMode: 0o666, uid: 0, gid: 0),
        Device(type: .char, path: "/dev/zero", major: 1, minor: 5, fileMode: 0o666, uid: 0, gid: 0),
        Device(type: .char, path: "/dev/urandom", major: 1, minor: 9, fileMode: 0o666, uid: 0, gid: 0),
    ]

    /// Device nodes in the container (numbers are the guest kernel's). An existing
    /// node is kept, as runc keeps it; paths must stay inside the root.
    static func makeDevices(_ devices: [Device]) throws {
        let saved = umask(0)
        defer { umask(saved) }
        for device in devices {
            guard device.path.hasPrefix("/"), !device.path.split(separator: "/").contains("..") else {
                throw AgentError("linux.devices: \(device.path): not an absolute path inside the container")
            }
            let kind: mode_t
            switch device.type {
            case .char, "u": kind = S_IFCHR
            case .block: kind = S_IFBLK
            case "p": kind = S_IFIFO
            default: throw AgentError("linux.devices: \(device.path): unknown type \(device.type.rawValue)")
            }
            let target = root + device.path
            makeDirectories(parent(target))
            let number = cposix_makedev(UInt32(truncatingIfNeeded: device.major), UInt32(truncatingIfNeeded: device.minor))
            let mode = mode_t(device.fileMode ?? 0o666) & 0o7777
            if mknod(target, kind | mode, number) != 0 {
                if errno == EEXIST { continue }
                throw AgentError("mknod \(device.path): \(String(cString: strerror(errno)))")
            }
            if chown(target, device.uid ?? 0, device.gid ?? 0) != 0 {
                throw AgentError("chown \(device.path): \(String(cString: strerror(errno)))")
            }
        }
    }

    /// runc's /dev links: fd, stdin, stdout, stderr into /proc/self (existing ones are
    /// kept), and /dev/ptmx to the container's devpts.
    static func makeDevLinks() {
        for (link, target) in [("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                               ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")] {
            _ = symlink(target, root + "/dev/" + link)
        }
        // As runc: always, even before a devpts is mounted there.
        unlink(root + "/dev/ptmx")
        _ = symlink("pts/ptmx", root + "/dev/ptmx")
    }

    /// `path` without its last component ("/" for a top-level name).
    static func parent(_ path: String) -> String {
        guard let slash = path.lastIndex(of: "/"), slash != path.startIndex else { return "/" }
        return String(path[..<slash])
    }

    static func makeDirectories(_ path: String) {
        var current = ""
        for part in path.split(separator: "/") {
            current += "/" + part
            if mkdir(current, 0o755) != 0 && errno != EEXIST { return }
        }
    }

    /// A process started in the container: its pid and the agent's ends of its stdio.
    struct Launched {
        var pid: pid_t
        /// Where the process's input goes (a pipe, or a dup of the pty master).
        var stdin: Int32
        var outputs: [(Int32, Frame.Stream)]
        /// The pty master, for window sizes.
        var terminal: Int32?
    }

    /// On an emulating nested host the VMM gives the agent GLIBC_TUNABLES (on the
    /// kernel command line) that turn off glibc's AVX code paths: there the guest
    /// kernel cannot save YMM state (it runs with `noxsave`) while user code runs
    /// natively with AVX enabled, so processes that use AVX corrupt each other's
    /// registers. Container processes get the same value unless their spec sets
    /// GLIBC_TUNABLES itself. On hardware KVM the agent has none and nothing changes.
    static func withHostWorkarounds(_ environment: [String]) -> [String] {
        guard let tunables = getenv("GLIBC_TUNABLES"), !environment.contains(where: { $0.hasPrefix("GLIBC_TUNABLES=") }) else {
            return environment
        }
        return environment + ["GLIBC_TUNABLES=" + String(cString: tunables)]
    }

    /// Starts `spec` in the container: with `terminal` on a pty of the container's
    /// devpts as its controlling terminal (its output travels as one stream),
    /// otherwise on three pipes.
    /// `executable` is args[0] as `checkExecutable` resolved it.
    static func launch(_ spec: Spec.Process, executable: String, seccomp: [UInt8]?) throws -> Launched {
        guard let args = spec.args, !args.isEmpty else { throw AgentError("process.args is empty") }
        var environment = withHostWorkarounds(spec.env ?? [])
        if !environment.contains(where: { $0.hasPrefix("HOME=") }) {
            // As runc: HOME from the user's /etc/passwd entry in the container, else "/".
            environment.append("HOME=" + UserDatabase.home(uid: spec.user.uid, root: root))
        }
        if spec.terminal == true {
            // The pty comes from the container's devpts (as runc opens /dev/ptmx inside
            // the container), so it is /dev/pts/N there; without one, from the agent's.
            var ptmx = root + "/dev/pts/ptmx"
            if access(ptmx, F_OK) != 0 {
                guard mountFilesystem("devpts", at: "/dev/pts", type: "devpts", flags: UInt(MS_NOSUID | MS_NOEXEC)) else {
                    throw AgentError("mount devpts on /dev/pts failed")
                }
                ptmx = "/dev/pts/ptmx"
            }
            var master: Int32 = -1, slave: Int32 = -1
            guard cposix_open_pty_in(ptmx, &master, &slave) == 0 else { throw AgentError("open pty \(ptmx): \(String(cString: strerror(errno)))") }
            if let size = spec.consoleSize {
                // process.consoleSize, as runc sets it on the pty before the process starts.
                _ = cposix_set_window_size(master, UInt16(clamping: size.height), UInt16(clamping: size.width))
            }
            let input = dup(master)
            let pid = try spawn(spec, executable: executable, args: args, environment: environment, stdio: .terminal(slave), seccomp: seccomp)
            close(slave)
            return Launched(pid: pid, stdin: input, outputs: [(master, .stdout)], terminal: master)
        }
        var stdinPipe: [Int32] = [-1, -1], stdoutPipe: [Int32] = [-1, -1], stderrPipe: [Int32] = [-1, -1]
        guard cguest_pipe(&stdinPipe) == 0, cguest_pipe(&stdoutPipe) == 0, cguest_pipe(&stderrPipe) == 0 else {
            throw AgentError("pipe: \(String(cString: strerror(errno)))")
        }
        let pid = try spawn(spec, executable: executable, args: args, environment: environment,
                            stdio: .pipes(stdin: stdinPipe[0], stdout: stdoutPipe[1], stderr: stderrPipe[1]), seccomp: seccomp)
        close(stdinPipe[0]); close(stdoutPipe[1]); close(stderrPipe[1])
        return Launched(pid: pid, stdin: stdinPipe[1], outputs: [(stdoutPipe[0], .stdout), (stderrPipe[0], .stderr)])
    }

    enum Stdio {
        case pipes(stdin: Int32, stdout: Int32, stderr: Int32)
        /// The pty's slave end: it becomes the controlling terminal of a new session.
        case terminal(Int32)
    }

    /// Starts the process (`cguest_spawn`, a vfork whose child only makes system
    /// calls): everything the child needs is decided here, in the agent, and stays
    /// alive until the child has exec'd or failed (vfork suspends us until then).
    static func spawn(_ spec: Spec.Process, executable: String, args: [String], environment: [String], stdio: Stdio,
                      seccomp: [UInt8]?) throws -> pid_t {
        var limits: [(Int32, UInt64, UInt64)] = []
        for limit in spec.rlimits ?? [] {
            guard let resource = limit.type.number else { throw AgentError("rlimit \(limit.type.rawValue): unknown") }
            limits.append((resource, limit.soft, limit.hard))
        }
        let capabilities = spec.capabilities.map(CapabilityMasks.init)
        // As runc (whose user is always "uid:gid" here): additionalGids only, not the
        // groups /etc/group lists the user in.
        let groups = (spec.user.additionalGids ?? []).map { UInt32($0) }
        let cArgs = args.map { strdup($0) } + [nil]
        let cEnv = environment.map { strdup($0) } + [nil]
        defer { (cArgs + cEnv).forEach { free($0) } }
        let resources = limits.map(\.0), soft = limits.map { $0.1 }, hard = limits.map { $0.2 }
        let oom = spec.oomScoreAdj.map { "\($0)\n" }
        let program = seccomp ?? []
        let cwdText = spec.cwd.isEmpty ? "/" : spec.cwd
        let pid: pid_t = executable.withCString { path in
          cwdText.withCString { cwd in
            root.withCString { rootPath in
                cArgs.withUnsafeBufferPointer { argv in
                    cEnv.withUnsafeBufferPointer { envp in
                        resources.withUnsafeBufferPointer { resources in
                            soft.withUnsafeBufferPointer { soft in
                                hard.withUnsafeBufferPointer { hard in
                                    groups.withUnsafeBufferPointer { groups in
                                        program.withUnsafeBytes { program in
                                            withOptionalCString(oom) { oom in
                                                var request = cguest_spawn_request()
                                                request.path = path
                                                request.argv = argv.baseAddress
                                                request.envp = envp.baseAddress
                                                switch stdio {
                                                case .pipes(let stdin, let stdout, let stderr): request.stdio = (stdin, stdout, stderr)
                                                case .terminal(let slave): request.stdio = (slave, slave, slave); request.terminal = 1
                                                }
                                                request.root = rootPath
                                                request.cwd = cwd
                                                request.umask = spec.user.umask.map { Int32(truncatingIfNeeded: $0) } ?? -1
                                                request.oom_score_adj = oom
                                                request.rlimit_count = Int32(resources.count)
                                                request.rlimit_resources = resources.baseAddress
                                                request.rlimit_soft = soft.baseAddress
                                                request.rlimit_hard = hard.baseAddress
                                                if let capabilities {
                                                    request.has_capabilities = 1
                                                    request.bounding = capabilities.bounding
                                                    request.effective = capabilities.effective
                                                    request.permitted = capabilities.permitted
                                                    request.inheritable = capabilities.inheritable
                                                    request.ambient = capabilities.ambient
                                                    request.last_capability = CapabilityMasks.lastCapability()
                                                }
                                                request.group_count = Int32(groups.count)
                                                request.groups = groups.baseAddress
                                                request.uid = spec.user.uid
                                                request.gid = spec.user.gid
                                                request.no_new_privileges = spec.noNewPrivileges == true ? 1 : 0
                                                if seccomp != nil {
                                                    request.seccomp = program.baseAddress
                                                    request.seccomp_bytes = UInt(program.count)
                                                }
                                                return cguest_spawn(&request)
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
          }
        }
        guard pid > 0 else { throw AgentError("vfork: \(String(cString: strerror(errno)))") }
        return pid
    }

    /// What runc checks at create: the program exists and can be executed, so that a
    /// bad process.args fails `create` with the words engines map to 127 / 126.
    /// Returns args[0] resolved against the container's PATH, which is what runs (as
    /// runc's init looks the path up once, at create).
    static func checkExecutable(_ spec: Spec.Process) throws -> String {
        guard let name = spec.args?.first, !name.isEmpty else { throw AgentError("args must not be empty") }
        let path = resolve(name, environment: spec.env ?? [])
        guard path.hasPrefix("/") || path.contains("/") else {
            throw AgentError("exec: \"\(name)\": executable file not found in $PATH")
        }
        guard let info = statInRoot(path.hasPrefix("/") ? path : (spec.cwd.isEmpty ? "/" : spec.cwd) + "/" + path) else {
            throw AgentError("exec: \"\(name)\": stat \(path): \(String(cString: strerror(errno)).lowercased())")
        }
        guard (info.st_mode & S_IFMT) == S_IFREG, info.st_mode & 0o111 != 0 else {
            throw AgentError("exec: \"\(name)\": permission denied")
        }
        return path
    }

    /// stat of `path` as the container sees it: resolved inside its root, so absolute
    /// symlinks in the image point into the image, not into the agent's root.
    static func statInRoot(_ path: String) -> stat? {
        // O_PATH: a directory opened for reading would cost the share an OPENDIR and a
        // RELEASEDIR round trip, and this runs once per PATH entry.
        let rootFD = cposix_open_directory_path(root)
        guard rootFD >= 0 else { return nil }
        defer { close(rootFD) }
        let fd = cposix_open_path_in_root(rootFD, path)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var info = stat()
        return fstat(fd, &info) == 0 ? info : nil
    }

    /// `name` as execvp would find it, with the container's PATH, inside the container root.
    static func resolve(_ name: String, environment: [String]) -> String {
        guard !name.contains("/") else { return name }
        let path = environment.last { $0.hasPrefix("PATH=") }.map { String($0.dropFirst(5)) } ?? "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        for directory in path.split(separator: ":") {
            let candidate = "\(directory)/\(name)"
            if let info = statInRoot(candidate), (info.st_mode & S_IFMT) == S_IFREG, info.st_mode & 0o111 != 0 { return candidate }
        }
        return name
    }
}

/// process.capabilities as kernel bit masks. Names the guest kernel does not know are
/// left out, as runc ignores unknown capabilities.
struct CapabilityMasks {
    var bounding: UInt64, effective: UInt64, permitted: UInt64, inheritable: UInt64, ambient: UInt64

    init(_ capabilities: Capabilities) {
        func mask(_ list: [Capability]?) -> UInt64 {
            (list ?? []).reduce(0) { bits, capability in
                guard let number = capability.number, number < 64 else { return bits }
                return bits | (1 << UInt64(number))
            }
        }
        bounding = mask(capabilities.bounding)
        effective = mask(capabilities.effective)
        permitted = mask(capabilities.permitted)
        inheritable = mask(capabilities.inheritable)
        ambient = mask(capabilities.ambient)
    }

    /// /proc/sys/kernel/cap_last_cap of the guest kernel.
    static func lastCapability() -> Int32 {
        let fd = open("/proc/sys/kernel/cap_last_cap", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return 40 }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 16)
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, 15) }
        guard n > 0 else { return 40 }
        return Int32(String(decoding: buffer[0..<n].prefix { $0 >= 0x30 && $0 <= 0x39 }, as: UTF8.self)) ?? 40
    }
}

/// `body` with `text` as a C string, or NULL.
func withOptionalCString<R>(_ text: String?, _ body: (UnsafePointer<CChar>?) -> R) -> R {
    guard let text else { return body(nil) }
    return text.withCString { body($0) }
}
