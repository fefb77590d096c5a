/// JSON in and out for the spec's documents (config.json, process.json, state, features).
public enum OCIJSON {
    /// Decodes `bytes`, naming `file` in errors: a syntax error gives its line and column,
    /// a shape error its JSON path ("config.json: invalid JSON at process.args[0]: expected a string, found 1").
    /// Unknown keys are ignored.
    public static func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8], file: String) throws(BundleError) -> T {
        let tree: JSONValue
        do {
            tree = try JSONParser.parse(bytes)
        } catch {
            throw .syntax(file: file, line: error.line, column: error.column, reason: error.reason)
        }
        do {
            return try T(from: JSONTreeDecoder(tree))
        } catch let error as DecodingError {
            throw bundleError(error, file: file)
        } catch let error as BundleError {
            throw error
        } catch {
            throw .decoding(file: file, at: "", reason: "\(error)")
        }
    }

    public static func decode<T: Decodable>(_ type: T.Type, from string: String, file: String) throws(BundleError) -> T {
        try decode(type, from: Array(string.utf8), file: file)
    }

    /// Pretty-printed with sorted keys and unescaped slashes, no trailing newline.
    /// No Foundation: OCIBundle is linked into the static guest agent.
    public static func encode<T: Encodable>(_ value: T) throws -> [UInt8] {
        JSONWriter.write(try JSONTreeEncoder.encode(value), pretty: true)
    }

    /// One line, sorted keys (for state output, logs and agent messages).
    public static func encodeCompact<T: Encodable>(_ value: T) throws -> [UInt8] {
        JSONWriter.write(try JSONTreeEncoder.encode(value), pretty: false)
    }

    static func bundleError(_ error: DecodingError, file: String) -> BundleError {
        switch error {
        case .typeMismatch(_, let context), .valueNotFound(_, let context), .dataCorrupted(let context):
            return .decoding(file: file, at: jsonPath(context.codingPath), reason: context.debugDescription)
        case .keyNotFound(let key, let context):
            return .decoding(file: file, at: jsonPath(context.codingPath + [key]), reason: "required field is missing")
        @unknown default:
            return .decoding(file: file, at: "", reason: "\(error)")
        }
    }

    /// `process.args[0]`, `annotations["io.podman.x"]`.
    static func jsonPath(_ codingPath: [any CodingKey]) -> String {
        var path = ""
        for key in codingPath {
            if let index = key.intValue {
                path += "[\(index)]"
            } else if isIdentifier(key.stringValue) {
                path += path.isEmpty ? key.stringValue : "." + key.stringValue
            } else {
                path += "[\"\(key.stringValue)\"]"
            }
        }
        return path
    }

    private static func isIdentifier(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.allSatisfy { byte in
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"):
                true
            default:
                false
            }
        }
    }
}
