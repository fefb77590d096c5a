import Runtime
import ArgumentParser
import Foundation
import OCIBundle

/// `sm-runc list`: the containers under --root, as runc's table or JSON.
struct List: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List containers.")

    @OptionGroup var globals: GlobalOptions
    @Option(name: [.short, .long], help: "table or json.") var format: String = "table"
    @Flag(name: [.short, .long], help: "Print only the ids.") var quiet = false

    func run() throws {
        guard format == "table" || format == "json" else { throw RuntimeError("invalid format option") }
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: globals.root)) ?? []).sorted()
        let containers = names.compactMap { try? ContainerLookup(root: globals.root, id: $0) }
            .map { StateDocument($0.record, status: $0.status) }
        if quiet {
            print(containers.map(\.id).joined(separator: "\n"), terminator: containers.isEmpty ? "" : "\n")
        } else if format == "json" {
            FileHandle.standardOutput.write(Data(try OCIJSON.encodeCompact(containers) + [0x0a]))
        } else {
            let rows = [["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]]
                + containers.map { [$0.id, String($0.pid), $0.status, $0.bundle, $0.created, $0.owner] }
            print(Self.table(rows), terminator: "")
        }
    }

    /// Go's tabwriter as runc configures it: cells padded to max(12, widest + 3), the
    /// last column not padded.
    static func table(_ rows: [[String]]) -> String {
        let columns = rows.map(\.count).max() ?? 0
        let widths = (0..<columns).map { column in
            max(12, (rows.map { column < $0.count ? $0[column].count : 0 }.max() ?? 0) + 3)
        }
        return rows.map { row in
            row.enumerated().map { index, cell in
                index == row.count - 1 ? cell : cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
            }.joined() + "\n"
        }.joined()
    }
}
