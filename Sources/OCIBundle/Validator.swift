/// Collects validation problems, each with the JSON path it is about.
struct Validator {
    let file: String
    private(set) var problems: [BundleError] = []

    init(file: String) { self.file = file }

    mutating func fail(_ at: String, _ reason: String) {
        problems.append(.invalid(file: file, at: at, reason: reason))
    }

    /// An absolute path inside the container.
    mutating func absolute(_ path: String, at: String) {
        if path.isEmpty {
            fail(at, "must not be empty")
        } else if !path.hasPrefix("/") {
            fail(at, "must be an absolute path")
        }
    }

    /// One of `allowed` (by default everything the spec defines); a short list is named in the message.
    mutating func known<T: OCIString>(_ value: T, at: String, allowed: [T] = T.known) {
        if value.rawValue.isEmpty {
            fail(at, "must not be empty")
        } else if !allowed.contains(value) {
            let hint = allowed.count <= 4 ? " (want \(Self.list(allowed.map(\.rawValue))))" : ""
            fail(at, "unknown \(Self.quote(value.rawValue))\(hint)")
        }
    }

    mutating func range<T: BinaryInteger>(_ value: T, _ bounds: ClosedRange<T>, at: String) {
        if !bounds.contains(value) {
            fail(at, "\(value) is out of range (\(bounds.lowerBound) to \(bounds.upperBound))")
        }
    }

    /// Go's `%q` for the strings that appear in messages.
    static func quote(_ text: String) -> String {
        var quoted = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": quoted += "\\\""
            case "\\": quoted += "\\\\"
            case "\n": quoted += "\\n"
            case "\t": quoted += "\\t"
            case _ where scalar.value < 0x20 || scalar.value == 0x7f:
                quoted += "\\x" + (scalar.value < 0x10 ? "0" : "") + String(scalar.value, radix: 16)
            default: quoted.unicodeScalars.append(scalar)
            }
        }
        return quoted + "\""
    }

    /// "a, b or c".
    static func list(_ items: [String]) -> String {
        guard let last = items.last else { return "" }
        return items.count == 1 ? last : items.dropLast().joined(separator: ", ") + " or " + last
    }
}
