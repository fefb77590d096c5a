import Testing
import Foundation
@testable import VMM
@testable import Runtime

extension RuntimeTests {
    /// A container's state directory and what `delete` does with it.
    @Suite struct StateDirectoryTests {
        @Test func removeTakesTheBindDirectoryOfASocketLeftByAKilledVMM() throws {
            let root = try TemporaryDirectory()
            let state = try StateDirectory.create(root: root.path, id: "c1")
            // What a VMM killed between mkdtemp and rename leaves: `.XXXXXX/s`.
            let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
            defer { close(fd) }
            var template = Array((state.path + "/" + UnixSocket.bindDirectoryTemplate).utf8CString)
            let left = String(cString: try #require(template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }))
            #expect(FileManager.default.createFile(atPath: left + "/" + UnixSocket.boundName, contents: nil))
            try state.remove()
            #expect(lstatus(state.path) == nil)
        }
    }
}
