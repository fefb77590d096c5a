/// A parsed JSON document, kept close to the text: numbers stay as their literal so that
/// integer decoding can be exact (Go's `encoding/json` semantics: `1.0`, `1e3` and `-1`
/// are not a `uint32`), and objects remember their key order for `allKeys`.
enum JSONValue: Equatable, Sendable {
    case null
    case bool(Bool)
    case number(String)
    case string(String)
    case array([JSONValue])
    case object(JSONObject)

    /// How the value is named in "found ..." messages.
    var kindDescription: String {
        switch self {
        case .null: "null"
        case .bool(let value): value ? "true" : "false"
        case .number(let text): text.count <= 24 ? text : "a number"
        case .string: "a string"
        case .array: "an array"
        case .object: "an object"
        }
    }
}

/// A JSON object. A repeated key keeps its last value (as Go's decoder does).
struct JSONObject: Equatable, Sendable {
    private(set) var keys: [String] = []
    private(set) var values: [String: JSONValue] = [:]

    subscript(key: String) -> JSONValue? { values[key] }

    mutating func set(_ key: String, _ value: JSONValue) {
        if values.updateValue(value, forKey: key) == nil { keys.append(key) }
    }
}

/// A syntax error: where it is (1-based line and column, in bytes) and what is wrong,
/// worded like Go's `encoding/json` ("invalid character 'x' looking for beginning of value").
struct JSONSyntaxError: Error, Equatable, Sendable {
    var line: Int
    var column: Int
    var reason: String
}
