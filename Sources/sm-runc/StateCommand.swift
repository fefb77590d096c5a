import Runtime
import ArgumentParser
import Foundation
import OCIBundle

/// `sm-runc state`: the OCI state of a container, as JSON on stdout.
struct StateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "state", abstract: "Output the state of a container.")

    @OptionGroup var globals: GlobalOptions
    @Argument(help: "The container id.") var id: String

    func run() throws {
        let container = try ContainerLookup(root: globals.root, id: id)
        let document = StateDocument(container.record, status: container.status)
        FileHandle.standardOutput.write(Data(try OCIJSON.encode(document) + [0x0a]))
    }
}
