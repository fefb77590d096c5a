/// The contract between the VMM side and the guest agent `sm-init`.
/// Version 1 knows one message: the agent's ready line on the guest console,
/// printed once PID 1 has its filesystems and is ready for work.
public enum AgentProtocol {
    public static let version = 1
    /// The agent connects to the VMM over vsock: host context id 2, this port
    /// (the VMM's hybrid vsock maps it to the Unix socket `<path>_1024`).
    public static let hostCID: UInt32 = 2
    public static let vsockPort: UInt32 = 1024

    /// Kernel parameters the agent needs. Unknown `NAME=value` parameters reach PID 1
    /// as environment variables. The Swift runtime's backtracer initialiser in a static
    /// executable resolves its own path through /proc/self/exe and aborts when /proc
    /// is not mounted yet, which is always so for PID 1; naming the (absent)
    /// backtracer and disabling it skips that lookup.
    public static let kernelParameters = ["SWIFT_BACKTRACE=enable=no,swift-backtrace=/sbin/swift-backtrace"]
}

/// `sm-init: ready v1 uptime=12.34` — the guest's uptime (seconds, from
/// /proc/uptime) when the agent became ready. One line, ASCII, no Foundation.
public struct ReadyLine: Equatable, Sendable {
    public static let prefix = "sm-init: ready v"
    public var version: Int
    public var uptime: String

    public init(version: Int = AgentProtocol.version, uptime: String) {
        self.version = version
        self.uptime = uptime
    }

    public var rendered: String { "\(Self.prefix)\(version) uptime=\(uptime)" }

    /// Parses a ready line; nil for anything else (a hostile or garbled guest line included).
    public init?(parsing line: some StringProtocol) {
        let text = line.hasSuffix("\r") ? String(line.dropLast()) : String(line)
        guard text.utf8.count <= 128, text.hasPrefix(Self.prefix) else { return nil }
        let rest = text.dropFirst(Self.prefix.count)
        let parts = rest.split(separator: " ", omittingEmptySubsequences: false)
        guard parts.count == 2, let version = Int(parts[0]), version > 0, parts[1].hasPrefix("uptime=") else { return nil }
        let uptime = parts[1].dropFirst("uptime=".count)
        guard !uptime.isEmpty, uptime.allSatisfy({ $0.isNumber || $0 == "." }), Double(uptime) != nil else { return nil }
        self.init(version: version, uptime: String(uptime))
    }

    public var uptimeSeconds: Double { Double(uptime) ?? 0 }
}

/// Splits a console byte stream into lines and spots the agent's ready line.
/// Bounded: a line longer than `maxLine` bytes is cut (a guest cannot grow it forever).
public struct ConsoleLineScanner: Sendable {
    public static let maxLine = 4096
    private var partial: [UInt8] = []
    public private(set) var ready: ReadyLine?

    public init() {}

    /// Feeds console bytes; returns the ready line the first time it is complete.
    public mutating func feed(_ bytes: some Sequence<UInt8>) -> ReadyLine? {
        var found: ReadyLine?
        for byte in bytes {
            if byte == 0x0a {
                if ready == nil, let line = ReadyLine(parsing: String(decoding: partial, as: UTF8.self)) {
                    ready = line
                    found = line
                }
                partial.removeAll(keepingCapacity: true)
            } else if partial.count < Self.maxLine {
                partial.append(byte)
            }
        }
        return found
    }
}
