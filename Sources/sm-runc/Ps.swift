import Runtime
import ArgumentParser
import Foundation
import OCIBundle

/// `sm-runc ps`: the container's host processes: the VMM (every process of the
/// container runs inside it) and the exec proxies. `--format json` prints their pids
/// (what containerd reads); the table is the host's `ps` output for those pids, as
/// runc prints it.
struct Ps: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the host processes of a container.")

    @OptionGroup var globals: GlobalOptions
    @Option(name: [.short, .long], help: "table or json.") var format: String = "table"
    @Argument(help: "The container id.") var id: String
    @Argument(parsing: .captureForPassthrough, help: "Options for ps (default -ef).") var psOptions: [String] = []

    func run() throws {
        guard format == "table" || format == "json" else { throw RuntimeError("invalid format option") }
        let container = try ContainerLookup(root: globals.root, id: id)
        var pids: [Int32] = []
        if container.status != .stopped {
            let reply = try ControlChannel.request("ps", socket: container.state.controlSocket, timeout: 10)
            pids = reply.split(separator: " ").compactMap { Int32($0) }
        }
        if format == "json" {
            print("[" + pids.map(String.init).joined(separator: ",") + "]")
            return
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/ps")
        process.arguments = psOptions.isEmpty ? ["-ef"] : psOptions
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        guard let header = lines.first, let pidColumn = header.split(separator: " ").firstIndex(of: "PID") else {
            throw RuntimeError("ps: no PID column in the output of ps \(process.arguments!.joined(separator: " "))")
        }
        lines.removeFirst()
        print(header)
        for line in lines {
            let fields = line.split(separator: " ")
            if pidColumn < fields.count, let pid = Int32(fields[pidColumn]), pids.contains(pid) { print(line) }
        }
    }
}
