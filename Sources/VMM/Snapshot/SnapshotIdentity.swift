/// What a snapshot was made with; a snapshot restores only into the same VMM
/// version, kernel and agent (the caller hashes the kernel and agent images).
public struct SnapshotIdentity: Sendable, Equatable {
    /// At most `maximumVersionBytes` bytes of UTF-8.
    public var vmmVersion: String
    /// SHA-256 of the guest kernel image (32 bytes).
    public var kernel: [UInt8]
    /// SHA-256 of the guest agent (32 bytes).
    public var agent: [UInt8]

    public static let maximumVersionBytes = 32
    public static let hashBytes = 32

    public init(vmmVersion: String, kernel: [UInt8], agent: [UInt8]) {
        self.vmmVersion = vmmVersion
        self.kernel = kernel
        self.agent = agent
    }

    /// Whether the fields fit the file format.
    func validate() throws(SnapshotError) {
        guard !vmmVersion.isEmpty, vmmVersion.utf8.count <= Self.maximumVersionBytes, !vmmVersion.utf8.contains(0) else {
            throw .invalidArgument("VMM version `\(vmmVersion)`: want 1 to \(Self.maximumVersionBytes) bytes without NUL")
        }
        guard kernel.count == Self.hashBytes, agent.count == Self.hashBytes else {
            throw .invalidArgument("kernel and agent identities are \(Self.hashBytes)-byte SHA-256 digests (got \(kernel.count) and \(agent.count))")
        }
    }

    static func hex(_ bytes: [UInt8]) -> String {
        "sha256:" + bytes.map { hex2($0) }.joined()
    }
}

/// What a snapshot file's header says.
public struct SnapshotHeader: Sendable {
    public let formatVersion: UInt32
    public let identity: SnapshotIdentity
    public let vcpuCount: Int
    public let memorySize: UInt64
    /// Where guest RAM starts in the file (page-aligned: it is mapped from there).
    public let memoryOffset: UInt64
}
