import Testing
@testable import OCIBundle

/// The Foundation-free encoder OCIBundle uses (it is linked into the static agent).
@Suite struct JSONWriterTests {
    struct Sample: Encodable {
        var text = "a\"b\\c/d\n\t\u{1}é"
        var missing: String? = nil
        var present: Int? = 7
        var flag = true
        var whole = 2.0
        var fraction = 0.25
        var list: [UInt32] = [1, 2]
        var empty: [String] = []
        var nested = ["z": 1, "a": 2]
    }

    @Test func compactIsSortedEscapedAndOmitsNil() throws {
        let text = String(decoding: try OCIJSON.encodeCompact(Sample()), as: UTF8.self)
        #expect(text == #"{"empty":[],"flag":true,"fraction":0.25,"list":[1,2],"nested":{"a":2,"z":1},"present":7,"text":"a\"b\\c/d\n\t\u0001é","whole":2}"#)
    }

    @Test func prettyUsesTwoSpacesAndSpacedColons() throws {
        let text = String(decoding: try OCIJSON.encode(["k": ["v"]]), as: UTF8.self)
        #expect(text == "{\n  \"k\" : [\n    \"v\"\n  ]\n}")
    }

    @Test func nonFiniteNumbersAreErrors() {
        #expect(throws: EncodingError.self) { try OCIJSON.encodeCompact([Double.nan]) }
    }
}
