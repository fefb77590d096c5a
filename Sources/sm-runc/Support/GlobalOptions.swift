import ArgumentParser
import VMM
import Runtime

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
    @Option(help: "Diagnosis only: `off` runs the VMM without its seccomp filters and capability drop (as SM_RUNC_VMM_SECCOMP=off).")
    var vmmSeccomp: String = "on"

    func validate() throws {
        guard logFormat == "text" || logFormat == "json" else {
            throw ValidationError("invalid log-format: \(logFormat)")
        }
        guard vmmSeccomp == "on" || vmmSeccomp == "off" else {
            throw ValidationError("invalid vmm-seccomp: \(vmmSeccomp) (on or off)")
        }
    }

    /// The flags as the engine library takes them.
    var runtime: RuntimeOptions {
        RuntimeOptions(root: root, log: log, logFormat: logFormat, debug: debug, vmmSeccompOff: vmmSeccomp == "off")
    }

    var reporter: Reporter {
        Reporter(logPath: log, format: Reporter.Format(rawValue: logFormat) ?? .text, debug: debug)
    }
}
