import Testing
@testable import OCIBundle

struct ErrorCase: Sendable, CustomStringConvertible {
    let json: String
    let message: String
    var description: String { json }
}

@Suite struct DecodeErrorTests {
    static let shapeErrors: [ErrorCase] = [
        ErrorCase(json: #"{"process": {"args": [1]}}"#, message: "config.json: invalid JSON at process.args[0]: expected a string, found 1"),
        ErrorCase(json: #"{"process": {"args": ["sh", null]}}"#, message: "config.json: invalid JSON at process.args[1]: expected a string, found null"),
        ErrorCase(json: #"{"process": {"user": {"uid": -1}}}"#, message: "config.json: invalid JSON at process.user.uid: expected an integer from 0 to 4294967295, found -1"),
        ErrorCase(json: #"{"process": {"user": {"uid": 1.5}}}"#, message: "config.json: invalid JSON at process.user.uid: expected an integer from 0 to 4294967295, found 1.5"),
        ErrorCase(json: #"{"process": {"user": {"gid": 1e3}}}"#, message: "config.json: invalid JSON at process.user.gid: expected an integer from 0 to 4294967295, found 1e3"),
        ErrorCase(json: #"{"process": {"user": {"uid": 4294967296}}}"#, message: "config.json: invalid JSON at process.user.uid: expected an integer from 0 to 4294967295, found 4294967296"),
        ErrorCase(json: #"{"process": {"terminal": "yes"}}"#, message: "config.json: invalid JSON at process.terminal: expected a boolean, found a string"),
        ErrorCase(json: #"{"process": {"capabilities": ["CAP_KILL"]}}"#, message: "config.json: invalid JSON at process.capabilities: expected an object, found an array"),
        ErrorCase(json: #"{"mounts": {}}"#, message: "config.json: invalid JSON at mounts: expected an array, found an object"),
        ErrorCase(json: #"{"mounts": [{"destination": "/a"}, {"destination": true}]}"#, message: "config.json: invalid JSON at mounts[1].destination: expected a string, found true"),
        ErrorCase(json: #"{"annotations": {"io.podman.x": 1}}"#, message: #"config.json: invalid JSON at annotations["io.podman.x"]: expected a string, found 1"#),
        ErrorCase(json: #"{"linux": {"seccomp": {"syscalls": [{"names": ["read"], "args": [{"index": 0, "value": -1}]}]}}}"#,
                  message: "config.json: invalid JSON at linux.seccomp.syscalls[0].args[0].value: expected an integer from 0 to 18446744073709551615, found -1"),
        ErrorCase(json: #"{"ociVersion": 1}"#, message: "config.json: invalid JSON at ociVersion: expected a string, found 1"),
        ErrorCase(json: #"[]"#, message: "config.json: invalid JSON: expected an object, found an array"),
        ErrorCase(json: #""config""#, message: "config.json: invalid JSON: expected an object, found a string"),
    ]

    @Test(arguments: shapeErrors)
    func shapeErrorsNameTheJSONPath(_ test: ErrorCase) {
        #expect(errorMessage { try decodeSpec(test.json) } == test.message)
    }

    static let syntaxErrors: [ErrorCase] = [
        ErrorCase(json: "", message: "config.json: invalid JSON at line 1, column 1: unexpected end of JSON input"),
        ErrorCase(json: "{\"ociVersion\": \"1.0.0\"", message: "config.json: invalid JSON at line 1, column 23: unexpected end of JSON input"),
        ErrorCase(json: #"{"ociVersion": "1.0.0",}"#, message: "config.json: invalid JSON at line 1, column 24: invalid character '}' looking for beginning of object key string"),
        ErrorCase(json: "{\n  \"process\": x\n}", message: "config.json: invalid JSON at line 2, column 14: invalid character 'x' looking for beginning of value"),
        ErrorCase(json: #"{"a": tru}"#, message: "config.json: invalid JSON at line 1, column 10: invalid character '}' in literal true (expecting 'e')"),
        ErrorCase(json: #"{"a": 1} x"#, message: "config.json: invalid JSON at line 1, column 10: invalid character 'x' after top-level value"),
        ErrorCase(json: #"{"a" 1}"#, message: "config.json: invalid JSON at line 1, column 6: invalid character '1' after object key"),
        ErrorCase(json: #"{"a": 1 "b": 2}"#, message: "config.json: invalid JSON at line 1, column 9: invalid character '\"' after object key:value pair"),
        ErrorCase(json: #"{"a": [1 2]}"#, message: "config.json: invalid JSON at line 1, column 10: invalid character '2' after array element"),
        ErrorCase(json: #"{"a": [1,]}"#, message: "config.json: invalid JSON at line 1, column 10: invalid character ']' looking for beginning of value"),
        ErrorCase(json: #"{"a": "\q"}"#, message: "config.json: invalid JSON at line 1, column 9: invalid character 'q' in string escape code"),
        ErrorCase(json: #"{"a": "\u12x4"}"#, message: "config.json: invalid JSON at line 1, column 12: invalid character 'x' in \\u hexadecimal character escape"),
        ErrorCase(json: "{\"a\": \"tab\there\"}", message: "config.json: invalid JSON at line 1, column 11: invalid character '\\t' in string literal"),
        ErrorCase(json: #"{"a": 01}"#, message: "config.json: invalid JSON at line 1, column 8: invalid character '1' after object key:value pair"),
        ErrorCase(json: #"{"a": -}"#, message: "config.json: invalid JSON at line 1, column 8: invalid character '}' in numeric literal"),
        ErrorCase(json: #"{"a": 1.}"#, message: "config.json: invalid JSON at line 1, column 9: invalid character '}' after decimal point in numeric literal"),
        ErrorCase(json: #"{"a": 1e}"#, message: "config.json: invalid JSON at line 1, column 9: invalid character '}' in exponent of numeric literal"),
        ErrorCase(json: "// comment\n{}", message: "config.json: invalid JSON at line 1, column 1: invalid character '/' looking for beginning of value"),
        ErrorCase(json: "{\"a\": NaN}", message: "config.json: invalid JSON at line 1, column 7: invalid character 'N' looking for beginning of value"),
    ]

    @Test(arguments: syntaxErrors)
    func syntaxErrorsGiveLineAndColumn(_ test: ErrorCase) {
        #expect(errorMessage { try decodeSpec(test.json) } == test.message)
    }

    @Test func nestingIsLimited() {
        let deep = String(repeating: "[", count: 600) + String(repeating: "]", count: 600)
        #expect(errorMessage { try decodeSpec(#"{"a": "# + deep + "}") } == "config.json: invalid JSON at line 1, column 518: exceeded max depth")
        let fine = String(repeating: "[", count: 500) + String(repeating: "]", count: 500)
        #expect(errorMessage { try decodeSpec(#"{"a": "# + fine + "}") } == nil)
    }

    @Test func errorsNameTheFileTheyCameFrom() {
        #expect(errorMessage { try OCIJSON.decode(Spec.Process.self, from: #"{"args": "sh"}"#, file: "/run/exec.json") }
            == "/run/exec.json: invalid JSON at args: expected an array, found a string")
        #expect(errorMessage { try OCIJSON.decode(State.self, from: #"{"ociVersion": "1.2.0"}"#, file: "state") }
            == "state: invalid JSON at id: required field is missing")
    }
}
