import ArgumentParser

/// runc's global flags. Engines put them before the subcommand (`sm-runc --root R
/// --log F --log-format json create …`, with `--flag=value` or `--flag value`); they
/// are accepted after it too.
struct GlobalOptions: ParsableArguments {
    @Option(help: "Root directory for the state of containers.")
    var root = "/run/sm-runc"
    @Option(help: "Log file for diagnostics and errors (default: stderr).")
    var log: String?
    @Option(help: "Log format: text or json.")
    var logFormat: String = "text"
    @Flag(help: "Log debug information (VMM and guest kernel) too.")
    var debug = false
    @Flag(help: "Accepted for compatibility; cgroups are managed with cgroupfs.")
    var systemdCgroup = false

    func validate() throws {
        guard logFormat == "text" || logFormat == "json" else {
            throw ValidationError("invalid log-format: \(logFormat)")
        }
    }

    var reporter: Reporter {
        Reporter(logPath: log, format: Reporter.Format(rawValue: logFormat) ?? .text, debug: debug)
    }
}
