extension Spec {
    /// Throws the first problem `validationErrors` finds.
    public func validate(file: String = Bundle.configFile) throws(BundleError) {
        if let first = validationErrors(file: file).first { throw first }
    }

    /// Every rule of the spec (and of runc) this configuration breaks, as
    /// `.invalid(file:at:reason:)` with JSON paths: "config.json: process.cwd: must be an absolute path".
    /// What can only be checked on the host (rootfs existence) is `Bundle.load`'s job.
    public func validationErrors(file: String = Bundle.configFile) -> [BundleError] {
        var v = Validator(file: file)
        checkVersion(&v)
        if let root {
            if root.path.isEmpty { v.fail("root.path", "must not be empty") }
        } else {
            v.fail("root", "must be set")
        }
        if let process {
            process.check(&v, at: "process")
        } else {
            v.fail("process", "must be set")
        }
        let hasUTS = linux?.namespace(.uts) != nil
        if hostname.map({ !$0.isEmpty }) == true, !hasUTS {
            v.fail("hostname", "unable to set hostname without a private UTS namespace")
        }
        if domainname.map({ !$0.isEmpty }) == true, !hasUTS {
            v.fail("domainname", "unable to set domainname without a private UTS namespace")
        }
        for (i, mount) in (mounts ?? []).enumerated() {
            v.absolute(mount.destination, at: "mounts[\(i)].destination")
        }
        for (name, hooks) in hooks?.all ?? [] {
            for (i, hook) in hooks.enumerated() {
                v.absolute(hook.path, at: "hooks.\(name)[\(i)].path")
                if let timeout = hook.timeout, timeout <= 0 {
                    v.fail("hooks.\(name)[\(i)].timeout", "must be greater than zero")
                }
            }
        }
        linux?.check(&v)
        return v.problems
    }

    private func checkVersion(_ v: inout Validator) {
        if ociVersion.isEmpty {
            v.fail("ociVersion", "must not be empty")
        } else if SemanticVersion(ociVersion) == nil {
            v.fail("ociVersion", "invalid \(Validator.quote(ociVersion)) (want a SemVer version such as \(Spec.version))")
        } else if !Spec.supports(version: ociVersion) {
            v.fail("ociVersion", "unsupported \(Validator.quote(ociVersion)) (want \(Spec.minimumVersion) to \(Spec.maximumVersion))")
        }
    }
}

extension Process {
    /// Throws the first problem `validationErrors` finds.
    public func validate(file: String, at prefix: String = "") throws(BundleError) {
        if let first = validationErrors(file: file, at: prefix).first { throw first }
    }

    /// The process rules; `prefix` is the JSON path of the process ("process" in config.json,
    /// "" for an `exec --process` document).
    public func validationErrors(file: String, at prefix: String = "") -> [BundleError] {
        var v = Validator(file: file)
        check(&v, at: prefix)
        return v.problems
    }

    func check(_ v: inout Validator, at prefix: String) {
        func at(_ field: String) -> String { prefix.isEmpty ? field : prefix + "." + field }
        if args?.isEmpty ?? true { v.fail(at("args"), "must not be empty") }
        if cwd.isEmpty {
            v.fail(at("cwd"), "must not be empty")
        } else if !cwd.hasPrefix("/") {
            v.fail(at("cwd"), "must be an absolute path")
        }
        for (i, variable) in (env ?? []).enumerated() {
            guard let equals = variable.firstIndex(of: "="), equals != variable.startIndex else {
                v.fail(at("env[\(i)]"), "invalid \(Validator.quote(variable)) (want KEY=value)")
                continue
            }
        }
        var seen: Set<RlimitType> = []
        for (i, rlimit) in (rlimits ?? []).enumerated() {
            v.known(rlimit.type, at: at("rlimits[\(i)].type"))
            if !rlimit.type.rawValue.isEmpty, !seen.insert(rlimit.type).inserted {
                v.fail(at("rlimits[\(i)].type"), "duplicate \(Validator.quote(rlimit.type.rawValue))")
            }
            if rlimit.soft > rlimit.hard {
                v.fail(at("rlimits[\(i)]"), "soft limit \(rlimit.soft) is above hard limit \(rlimit.hard)")
            }
        }
        if let oomScoreAdj { v.range(oomScoreAdj, -1000...1000, at: at("oomScoreAdj")) }
        if let ioPriority {
            v.known(ioPriority.class, at: at("ioPriority.class"))
            v.range(ioPriority.priority, 0...7, at: at("ioPriority.priority"))
        }
        if let scheduler {
            v.known(scheduler.policy, at: at("scheduler.policy"))
            for (i, flag) in (scheduler.flags ?? []).enumerated() {
                v.known(flag, at: at("scheduler.flags[\(i)]"))
            }
        }
    }
}
