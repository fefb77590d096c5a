import Foundation

struct ToolError: Error, CustomStringConvertible {
    let description: String
}

/// Runs `path` with `arguments`, feeding `input`; returns stdout. Throws on a non-zero exit.
func runTool(_ path: String, _ arguments: [String], input: [UInt8] = []) throws -> String {
    guard FileManager.default.isExecutableFile(atPath: path) else {
        throw ToolError(description: "\(path) is missing: run scripts/setup-deps.sh")
    }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    let stdin = Pipe(), stdout = Pipe()
    process.standardInput = stdin
    process.standardOutput = stdout
    try process.run()
    stdin.fileHandleForWriting.write(Data(input))
    try stdin.fileHandleForWriting.close()
    let output = stdout.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
        throw ToolError(description: "\(path) \(arguments.joined(separator: " ")) exited \(process.terminationStatus)")
    }
    return String(decoding: output, as: UTF8.self)
}
