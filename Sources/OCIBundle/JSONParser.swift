/// A strict RFC 8259 parser with line/column errors (Foundation's on this platform reports
/// neither for syntax errors). No trailing commas, comments or NaN; nesting is limited.
struct JSONParser {
    static let maximumDepth = 512

    private let bytes: [UInt8]
    private var index = 0
    private var depth = 0

    private init(_ bytes: [UInt8]) { self.bytes = bytes }

    static func parse(_ bytes: [UInt8]) throws(JSONSyntaxError) -> JSONValue {
        var parser = JSONParser(bytes)
        parser.skipWhitespace()
        let value = try parser.parseValue(context: "looking for beginning of value")
        parser.skipWhitespace()
        if parser.index < bytes.count {
            throw parser.error("invalid character \(parser.quoted(parser.bytes[parser.index])) after top-level value")
        }
        return value
    }

    // MARK: - Values

    private mutating func parseValue(context: String) throws(JSONSyntaxError) -> JSONValue {
        guard let byte = peek() else { throw endOfInput() }
        switch byte {
        case UInt8(ascii: "{"): return try parseObject()
        case UInt8(ascii: "["): return try parseArray()
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"): try expectLiteral("true"); return .bool(true)
        case UInt8(ascii: "f"): try expectLiteral("false"); return .bool(false)
        case UInt8(ascii: "n"): try expectLiteral("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try parseNumber())
        default: throw error("invalid character \(quoted(byte)) \(context)")
        }
    }

    private mutating func parseObject() throws(JSONSyntaxError) -> JSONValue {
        try enter()
        index += 1  // {
        var object = JSONObject()
        skipWhitespace()
        if peek() == UInt8(ascii: "}") {
            index += 1
            depth -= 1
            return .object(object)
        }
        while true {
            skipWhitespace()
            guard let byte = peek() else { throw endOfInput() }
            guard byte == UInt8(ascii: "\"") else {
                throw error("invalid character \(quoted(byte)) looking for beginning of object key string")
            }
            let key = try parseString()
            skipWhitespace()
            guard let colon = peek() else { throw endOfInput() }
            guard colon == UInt8(ascii: ":") else { throw error("invalid character \(quoted(colon)) after object key") }
            index += 1
            skipWhitespace()
            object.set(key, try parseValue(context: "looking for beginning of value"))
            skipWhitespace()
            guard let next = peek() else { throw endOfInput() }
            index += 1
            if next == UInt8(ascii: "}") { break }
            guard next == UInt8(ascii: ",") else {
                index -= 1
                throw error("invalid character \(quoted(next)) after object key:value pair")
            }
        }
        depth -= 1
        return .object(object)
    }

    private mutating func parseArray() throws(JSONSyntaxError) -> JSONValue {
        try enter()
        index += 1  // [
        var elements: [JSONValue] = []
        skipWhitespace()
        if peek() == UInt8(ascii: "]") {
            index += 1
            depth -= 1
            return .array(elements)
        }
        while true {
            skipWhitespace()
            elements.append(try parseValue(context: "looking for beginning of value"))
            skipWhitespace()
            guard let next = peek() else { throw endOfInput() }
            index += 1
            if next == UInt8(ascii: "]") { break }
            guard next == UInt8(ascii: ",") else {
                index -= 1
                throw error("invalid character \(quoted(next)) after array element")
            }
        }
        depth -= 1
        return .array(elements)
    }

    private mutating func parseString() throws(JSONSyntaxError) -> String {
        index += 1  // opening quote
        var utf8: [UInt8] = []
        while true {
            guard let byte = peek() else { throw endOfInput() }
            switch byte {
            case UInt8(ascii: "\""):
                index += 1
                return String(decoding: utf8, as: UTF8.self)
            case UInt8(ascii: "\\"):
                index += 1
                try parseEscape(into: &utf8)
            case 0..<0x20:
                throw error("invalid character \(quoted(byte)) in string literal")
            default:
                utf8.append(byte)
                index += 1
            }
        }
    }

    private mutating func parseEscape(into utf8: inout [UInt8]) throws(JSONSyntaxError) {
        guard let byte = peek() else { throw endOfInput() }
        index += 1
        let simple: UInt8? = switch byte {
        case UInt8(ascii: "\""): UInt8(ascii: "\"")
        case UInt8(ascii: "\\"): UInt8(ascii: "\\")
        case UInt8(ascii: "/"): UInt8(ascii: "/")
        case UInt8(ascii: "b"): 0x08
        case UInt8(ascii: "f"): 0x0c
        case UInt8(ascii: "n"): 0x0a
        case UInt8(ascii: "r"): 0x0d
        case UInt8(ascii: "t"): 0x09
        default: nil
        }
        if let simple {
            utf8.append(simple)
            return
        }
        guard byte == UInt8(ascii: "u") else {
            index -= 1
            throw error("invalid character \(quoted(byte)) in string escape code")
        }
        var scalar = try parseHex4()
        if (0xD800..<0xDC00).contains(scalar), bytes[index...].starts(with: [UInt8(ascii: "\\"), UInt8(ascii: "u")]) {
            let save = index
            index += 2
            let low = try parseHex4()
            if (0xDC00..<0xE000).contains(low) {
                scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
            } else {
                index = save
            }
        }
        // A lone surrogate becomes U+FFFD, as Go does.
        utf8.append(contentsOf: Array(String(Unicode.Scalar(scalar) ?? "\u{FFFD}").utf8))
    }

    private mutating func parseHex4() throws(JSONSyntaxError) -> UInt32 {
        var value: UInt32 = 0
        for _ in 0..<4 {
            guard let byte = peek() else { throw endOfInput() }
            let digit: UInt32
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt32(byte - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = UInt32(byte - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = UInt32(byte - UInt8(ascii: "A") + 10)
            default: throw error("invalid character \(quoted(byte)) in \\u hexadecimal character escape")
            }
            value = value << 4 | digit
            index += 1
        }
        return value
    }

    private mutating func parseNumber() throws(JSONSyntaxError) -> String {
        let start = index
        if peek() == UInt8(ascii: "-") { index += 1 }
        guard let first = peek() else { throw endOfInput() }
        if first == UInt8(ascii: "0") {
            index += 1
        } else if isDigit(first) {
            skipDigits()
        } else {
            throw error("invalid character \(quoted(first)) in numeric literal")
        }
        if peek() == UInt8(ascii: ".") {
            index += 1
            guard let byte = peek() else { throw endOfInput() }
            guard isDigit(byte) else { throw error("invalid character \(quoted(byte)) after decimal point in numeric literal") }
            skipDigits()
        }
        if let e = peek(), e == UInt8(ascii: "e") || e == UInt8(ascii: "E") {
            index += 1
            if let sign = peek(), sign == UInt8(ascii: "+") || sign == UInt8(ascii: "-") { index += 1 }
            guard let byte = peek() else { throw endOfInput() }
            guard isDigit(byte) else { throw error("invalid character \(quoted(byte)) in exponent of numeric literal") }
            skipDigits()
        }
        return String(decoding: bytes[start..<index], as: UTF8.self)
    }

    // MARK: - Helpers

    private mutating func expectLiteral(_ literal: String) throws(JSONSyntaxError) {
        for want in literal.utf8 {
            guard let byte = peek() else { throw endOfInput() }
            guard byte == want else {
                throw error("invalid character \(quoted(byte)) in literal \(literal) (expecting \(quoted(want)))")
            }
            index += 1
        }
    }

    private mutating func enter() throws(JSONSyntaxError) {
        depth += 1
        if depth > Self.maximumDepth { throw error("exceeded max depth") }
    }

    private func peek() -> UInt8? { index < bytes.count ? bytes[index] : nil }

    private func isDigit(_ byte: UInt8) -> Bool { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) }

    private mutating func skipDigits() {
        while let byte = peek(), isDigit(byte) { index += 1 }
    }

    private mutating func skipWhitespace() {
        while let byte = peek(), byte == 0x20 || byte == 0x0a || byte == 0x0d || byte == 0x09 { index += 1 }
    }

    private func quoted(_ byte: UInt8) -> String {
        switch byte {
        case UInt8(ascii: "'"): return #"'\''"#
        case 0x20..<0x7f: return "'\(Character(Unicode.Scalar(byte)))'"
        case 0x0a: return #"'\n'"#
        case 0x0d: return #"'\r'"#
        case 0x09: return #"'\t'"#
        default:
            let hex = String(byte, radix: 16, uppercase: false)
            return #"'\x"# + (hex.count < 2 ? "0" + hex : hex) + "'"
        }
    }

    private func endOfInput() -> JSONSyntaxError { error("unexpected end of JSON input") }

    /// The error at the current byte.
    private func error(_ reason: String) -> JSONSyntaxError {
        var line = 1
        var lineStart = 0
        for offset in 0..<min(index, bytes.count) where bytes[offset] == 0x0a {
            line += 1
            lineStart = offset + 1
        }
        return JSONSyntaxError(line: line, column: index - lineStart + 1, reason: reason)
    }
}
