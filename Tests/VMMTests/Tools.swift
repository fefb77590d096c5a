import Foundation
@testable import VMM

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

/// A bare VM for the vCPU tests: TSS, in-kernel irqchip, 4 MiB of RAM in slot 0 and
/// the boot tables (GDT, identity page tables) written, with `code` at `codeAddress`.
func makeBareVM(code: [UInt8], at codeAddress: GuestAddress) throws -> (kvm: KVMSystem, vm: KVMVirtualMachine, memory: GuestMemory) {
    let kvm = try KVMSystem()
    let vm = try kvm.createVM()
    try vm.setTSSAddress(X86Layout.tss)
    try vm.createIRQChip()
    let memory = try GuestMemory(size: 4 << 20)
    try vm.setUserMemoryRegion(slot: 0, guestAddress: 0, size: memory.size, hostAddress: memory.hostAddress)
    try X86VCPUSetup.writeBootTables(to: memory)
    try memory.write(bytes: code, at: codeAddress)
    return (kvm, vm, memory)
}
