/// A Foundation-free `Encoder` that builds a `JSONValue` tree, so OCIBundle (and the
/// protocol built on it) can be linked into the static guest agent without Foundation.
/// Nil optionals are omitted (`encodeIfPresent`), as Foundation's JSONEncoder does.
final class JSONTreeEncoder: Encoder {
    /// A node under construction; containers hold references and fill them in.
    final class Node {
        enum Content {
            case unset
            case scalar(JSONValue)
            case array([Node])
            case object(keys: [String], values: [String: Node])
        }
        var content = Content.unset

        var value: JSONValue {
            switch content {
            case .unset: return .object(JSONObject())
            case .scalar(let value): return value
            case .array(let nodes): return .array(nodes.map(\.value))
            case let .object(keys, values):
                var object = JSONObject()
                for key in keys { object.set(key, values[key]!.value) }
                return .object(object)
            }
        }

        func child(forKey key: String) -> Node {
            if case .object(var keys, var values) = content {
                if let existing = values[key] { return existing }
                let node = Node()
                keys.append(key)
                values[key] = node
                content = .object(keys: keys, values: values)
                return node
            }
            let node = Node()
            content = .object(keys: [key], values: [key: node])
            return node
        }

        func appendChild() -> Node {
            let node = Node()
            if case .array(var nodes) = content {
                nodes.append(node)
                content = .array(nodes)
            } else {
                content = .array([node])
            }
            return node
        }
    }

    let node: Node
    let codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    init(node: Node = Node(), codingPath: [any CodingKey] = []) {
        self.node = node
        self.codingPath = codingPath
    }

    static func encode<T: Encodable>(_ value: T) throws -> JSONValue {
        let encoder = JSONTreeEncoder()
        try value.encode(to: encoder)
        return encoder.node.value
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        if case .object = node.content {} else { node.content = .object(keys: [], values: [:]) }
        return KeyedEncodingContainer(Keyed<Key>(encoder: self, node: node, codingPath: codingPath))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        if case .array = node.content {} else { node.content = .array([]) }
        return Unkeyed(node: node, codingPath: codingPath)
    }

    func singleValueContainer() -> any SingleValueEncodingContainer {
        Single(node: node, codingPath: codingPath)
    }

    // MARK: - scalars

    static func number<T: BinaryInteger>(_ value: T) -> JSONValue { .number(String(value)) }

    static func number(_ value: Double, codingPath: [any CodingKey]) throws -> JSONValue {
        guard value.isFinite else {
            throw EncodingError.invalidValue(value, .init(codingPath: codingPath, debugDescription: "\(value) is not valid JSON"))
        }
        if value == value.rounded(), abs(value) < 9_007_199_254_740_992 { return .number(String(Int64(value))) }
        return .number(String(value))
    }

    /// Encodes `value` into `node`: scalars directly, anything else through its own `encode(to:)`.
    static func encode<T: Encodable>(_ value: T, into node: Node, codingPath: [any CodingKey]) throws {
        switch value {
        case let v as String: node.content = .scalar(.string(v))
        case let v as Bool: node.content = .scalar(.bool(v))
        case let v as Double: node.content = .scalar(try number(v, codingPath: codingPath))
        case let v as Float: node.content = .scalar(try number(Double(v), codingPath: codingPath))
        case let v as Int: node.content = .scalar(number(v))
        case let v as Int8: node.content = .scalar(number(v))
        case let v as Int16: node.content = .scalar(number(v))
        case let v as Int32: node.content = .scalar(number(v))
        case let v as Int64: node.content = .scalar(number(v))
        case let v as UInt: node.content = .scalar(number(v))
        case let v as UInt8: node.content = .scalar(number(v))
        case let v as UInt16: node.content = .scalar(number(v))
        case let v as UInt32: node.content = .scalar(number(v))
        case let v as UInt64: node.content = .scalar(number(v))
        default: try value.encode(to: JSONTreeEncoder(node: node, codingPath: codingPath))
        }
    }

    struct Keyed<Key: CodingKey>: KeyedEncodingContainerProtocol {
        let encoder: JSONTreeEncoder
        let node: Node
        let codingPath: [any CodingKey]

        mutating func encodeNil(forKey key: Key) throws { node.child(forKey: key.stringValue).content = .scalar(.null) }
        mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
            try JSONTreeEncoder.encode(value, into: node.child(forKey: key.stringValue), codingPath: codingPath + [key])
        }
        mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type, forKey key: Key) -> KeyedEncodingContainer<NestedKey> {
            JSONTreeEncoder(node: node.child(forKey: key.stringValue), codingPath: codingPath + [key]).container(keyedBy: keyType)
        }
        mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
            JSONTreeEncoder(node: node.child(forKey: key.stringValue), codingPath: codingPath + [key]).unkeyedContainer()
        }
        mutating func superEncoder() -> any Encoder {
            JSONTreeEncoder(node: node.child(forKey: "super"), codingPath: codingPath)
        }
        mutating func superEncoder(forKey key: Key) -> any Encoder {
            JSONTreeEncoder(node: node.child(forKey: key.stringValue), codingPath: codingPath + [key])
        }
    }

    struct Unkeyed: UnkeyedEncodingContainer {
        let node: Node
        let codingPath: [any CodingKey]
        var count: Int {
            if case .array(let nodes) = node.content { return nodes.count }
            return 0
        }

        mutating func encodeNil() throws { node.appendChild().content = .scalar(.null) }
        mutating func encode<T: Encodable>(_ value: T) throws {
            try JSONTreeEncoder.encode(value, into: node.appendChild(), codingPath: codingPath)
        }
        mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
            JSONTreeEncoder(node: node.appendChild(), codingPath: codingPath).container(keyedBy: keyType)
        }
        mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
            JSONTreeEncoder(node: node.appendChild(), codingPath: codingPath).unkeyedContainer()
        }
        mutating func superEncoder() -> any Encoder {
            JSONTreeEncoder(node: node.appendChild(), codingPath: codingPath)
        }
    }

    struct Single: SingleValueEncodingContainer {
        let node: Node
        let codingPath: [any CodingKey]

        mutating func encodeNil() throws { node.content = .scalar(.null) }
        mutating func encode<T: Encodable>(_ value: T) throws {
            try JSONTreeEncoder.encode(value, into: node, codingPath: codingPath)
        }
    }
}
