import Foundation
import Testing
@testable import OCIBundle

/// The message of the `BundleError` `body` throws, or nil if it throws nothing.
/// (The closure's type is `throws`, not `throws(BundleError)`: Swift 6 infers untyped throws for closures.)
func errorMessage<T>(_ body: () throws -> T) -> String? {
    do {
        _ = try body()
        return nil
    } catch let error as BundleError {
        return error.description
    } catch {
        return "not a BundleError: \(error)"
    }
}

func decodeSpec(_ json: String) throws(BundleError) -> Spec {
    try OCIJSON.decode(Spec.self, from: json, file: "config.json")
}

/// A JSON document in a canonical text form (sorted keys, no whitespace, numbers as written),
/// for comparing documents regardless of key order and formatting.
func canonicalJSON(_ bytes: [UInt8]) throws -> String {
    func render(_ value: JSONValue) -> String {
        switch value {
        case .null: "null"
        case .bool(let bool): bool ? "true" : "false"
        case .number(let text): text
        case .string(let string): Validator.quote(string)
        case .array(let elements): "[" + elements.map(render).joined(separator: ",") + "]"
        case .object(let object):
            "{" + object.keys.sorted().map { Validator.quote($0) + ":" + render(object[$0]!) }.joined(separator: ",") + "}"
        }
    }
    return render(try JSONParser.parse(bytes))
}

func canonicalJSON(_ string: String) throws -> String { try canonicalJSON(Array(string.utf8)) }
func canonicalJSON(_ data: Data) throws -> String { try canonicalJSON([UInt8](data)) }

/// A fresh directory under the temporary directory, removed by `cleanup()`.
struct TemporaryDirectory {
    let path: String

    init() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("ocibundle-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        path = url.path
    }

    func write(_ text: String, to name: String) throws {
        try Data(text.utf8).write(to: URL(fileURLWithPath: path + "/" + name))
    }

    func makeDirectory(_ name: String) throws {
        try FileManager.default.createDirectory(atPath: path + "/" + name, withIntermediateDirectories: true)
    }

    func cleanup() { try? FileManager.default.removeItem(atPath: path) }
}
