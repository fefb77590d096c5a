import Foundation

/// A reference VMM process whose console (stdout and stderr on one pipe) the
/// benchmark reads as it comes.
enum ConsoleProcess {
    /// Starts `executable` with stdin from /dev/null and stdout+stderr on one pipe.
    static func launch(_ executable: String, _ arguments: [String]) throws -> (process: Process, output: FileHandle) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        process.standardInput = FileHandle.nullDevice
        try process.run()
        // Our copy of the write end must go, or reading never sees EOF.
        try? pipe.fileHandleForWriting.close()
        return (process, pipe.fileHandleForReading)
    }

    /// Reads `output` to EOF, handing each chunk to `onChunk`; keeps at most `limit` bytes.
    static func drain(_ output: FileHandle, limit: Int = 1 << 20, onChunk: (Data) -> Void = { _ in }) -> Data {
        var kept = Data()
        while true {
            let chunk = output.availableData
            if chunk.isEmpty { return kept }
            if kept.count < limit { kept.append(chunk) }
            onChunk(chunk)
        }
    }
}
