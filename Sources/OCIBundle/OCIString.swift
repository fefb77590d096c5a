/// An enum-like string of the runtime spec (a namespace type, a seccomp action, ...).
///
/// A plain Swift `enum` would make decoding fail on a value this library does not know yet,
/// so these are structs around the raw string: any value survives decoding and re-encoding,
/// and the well-known values are static constants (`NamespaceType.pid`).
/// Validation, not decoding, decides whether a value is acceptable (see `known`).
public protocol OCIString: RawRepresentable, Codable, Hashable, Sendable, Comparable,
    CustomStringConvertible, ExpressibleByStringLiteral where RawValue == String
{
    init(rawValue: String)
    /// The values the spec (or the kernel) defines, in a meaningful order.
    static var known: [Self] { get }
}

extension OCIString {
    public init(stringLiteral value: String) { self.init(rawValue: value) }
    public init(_ value: String) { self.init(rawValue: value) }
    public var description: String { rawValue }
    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }
    /// Whether this is one of `known`.
    public var isKnown: Bool { Self.known.contains(self) }

    public init(from decoder: any Decoder) throws {
        self.init(rawValue: try decoder.singleValueContainer().decode(String.self))
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }
}
