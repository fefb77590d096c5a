import OCIBundle

/// What `exec` asks to run: a process.json (`--process`), or a command with options
/// on top of the container's own process (env, cwd, user), taken from the plan
/// `create` saved, not from config.json, which may be gone or changed.
package struct ExecRequest {
    package var processFile: String?
    package var command: [String]
    package var tty: Bool
    package var cwd: String?
    package var env: [String]
    package var user: String?
    package var noNewPrivs: Bool

    package init(processFile: String?, command: [String], tty: Bool, cwd: String?, env: [String], user: String?, noNewPrivs: Bool) {
        self.processFile = processFile
        self.command = command
        self.tty = tty
        self.cwd = cwd
        self.env = env
        self.user = user
        self.noNewPrivs = noNewPrivs
    }

    /// The process to run in `container`.
    package func process(in container: ContainerLookup) throws -> Spec.Process {
        if let processFile {
            let bytes = try readWholeFile(processFile)
            return try OCIJSON.decode(Spec.Process.self, from: bytes, file: processFile)
        }
        guard !command.isEmpty else { throw RuntimeError("exec: a command or --process is required") }
        guard var spec = try container.state.loadPlan().spec.process else {
            throw RuntimeError("exec: \(container.state.planPath): spec.process: missing")
        }
        spec.args = command
        spec.terminal = tty
        if let cwd { spec.cwd = cwd }
        spec.env = (spec.env ?? []) + env
        if let user {
            let parts = user.split(separator: ":").map { UInt32($0) }
            guard let uid = parts.first ?? nil, parts.count <= 2, parts.allSatisfy({ $0 != nil }) else {
                throw RuntimeError("exec: --user \(user): want UID[:GID]")
            }
            spec.user.uid = uid
            if parts.count == 2, let gid = parts[1] { spec.user.gid = gid }
        }
        if noNewPrivs { spec.noNewPrivileges = true }
        return spec
    }
}
