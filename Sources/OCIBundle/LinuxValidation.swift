extension Linux {
    func check(_ v: inout Validator) {
        var seen: Set<NamespaceType> = []
        for (i, namespace) in (namespaces ?? []).enumerated() {
            v.known(namespace.type, at: "linux.namespaces[\(i)].type")
            if !namespace.type.rawValue.isEmpty, !seen.insert(namespace.type).inserted {
                v.fail("linux.namespaces[\(i)].type", "duplicate \(Validator.quote(namespace.type.rawValue))")
            }
            if let path = namespace.path, !path.isEmpty, !path.hasPrefix("/") {
                v.fail("linux.namespaces[\(i)].path", "must be an absolute path")
            }
        }
        if namespace(.user) == nil {
            let reason = "user namespace mappings specified, but user namespace isn't enabled in the config"
            if !(uidMappings ?? []).isEmpty { v.fail("linux.uidMappings", reason) }
            if !(gidMappings ?? []).isEmpty { v.fail("linux.gidMappings", reason) }
        }
        for (i, device) in (devices ?? []).enumerated() {
            v.known(device.type, at: "linux.devices[\(i)].type", allowed: DeviceType.nodeTypes)
            v.absolute(device.path, at: "linux.devices[\(i)].path")
        }
        for (i, rule) in (resources?.devices ?? []).enumerated() {
            if let type = rule.type { v.known(type, at: "linux.resources.devices[\(i)].type", allowed: DeviceType.ruleTypes) }
            if let access = rule.access, !access.allSatisfy({ "rwm".contains($0) }) {
                v.fail("linux.resources.devices[\(i)].access", "invalid \(Validator.quote(access)) (want letters of rwm)")
            }
        }
        if let rootfsPropagation { v.known(rootfsPropagation, at: "linux.rootfsPropagation") }
        for (i, path) in (maskedPaths ?? []).enumerated() { v.absolute(path, at: "linux.maskedPaths[\(i)]") }
        for (i, path) in (readonlyPaths ?? []).enumerated() { v.absolute(path, at: "linux.readonlyPaths[\(i)]") }
        checkSysctl(&v)
        seccomp?.check(&v)
        if let personality { v.known(personality.domain, at: "linux.personality.domain") }
    }
}

extension Linux {
    /// The IPC namespace's sysctls besides `fs.mqueue.*` (runc's list).
    static let ipcSysctls: Set<String> = [
        "kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem",
        "kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced",
    ]

    /// `linux.sysctl` as runc allows it: only sysctls of a namespace the container has
    /// its own of (ipc, network, uts), in runc's words. In a microVM every sysctl is
    /// the guest kernel's, but a bundle that runc refuses must not run here either.
    /// A namespaced name the guest kernel lacks fails at create, in the guest
    /// ("open /proc/sys/...: no such file or directory", as runc's init).
    func checkSysctl(_ v: inout Validator) {
        for name in (sysctl ?? [:]).keys.sorted() {
            let at = "linux.sysctl"
            if Self.ipcSysctls.contains(name) || name.hasPrefix("fs.mqueue.") {
                if namespace(.ipc) == nil { v.fail(at, "sysctl \(Validator.quote(name)) is not allowed in the hosts ipc namespace") }
            } else if name.hasPrefix("net.") {
                if namespace(.network) == nil { v.fail(at, "sysctl \(Validator.quote(name)) not allowed in host network namespace") }
            } else if namespace(.uts) != nil && name == "kernel.domainname" {
                continue
            } else if namespace(.uts) != nil && name == "kernel.hostname" {
                v.fail(at, "sysctl \(Validator.quote(name)) is not allowed as it conflicts with the OCI \"hostname\" field")
            } else {
                v.fail(at, "sysctl \(Validator.quote(name)) is not in a separate kernel namespace")
            }
        }
    }
}

extension Seccomp {
    func check(_ v: inout Validator) {
        v.known(defaultAction, at: "linux.seccomp.defaultAction")
        for (i, arch) in (architectures ?? []).enumerated() { v.known(arch, at: "linux.seccomp.architectures[\(i)]") }
        for (i, flag) in (flags ?? []).enumerated() { v.known(flag, at: "linux.seccomp.flags[\(i)]") }
        for (i, syscall) in (syscalls ?? []).enumerated() {
            let at = "linux.seccomp.syscalls[\(i)]"
            if syscall.names.isEmpty { v.fail(at + ".names", "must not be empty") }
            v.known(syscall.action, at: at + ".action")
            for (j, arg) in (syscall.args ?? []).enumerated() {
                v.range(arg.index, 0...5, at: at + ".args[\(j)].index")
                v.known(arg.op, at: at + ".args[\(j)].op")
            }
        }
    }
}
