import Testing
import OCIBundle

@Suite struct ContainerIDTests {
    @Test(arguments: [
        "a", "0", "abc123", "my-container", "my_container", "a.b", "a+b", "A-Z_a-z.0+9", "...", "a..b", ".hidden",
        String(repeating: "f", count: 64), String(repeating: "x", count: 5000),
    ])
    func accepted(_ id: String) {
        #expect(errorMessage { try validateContainerID(id) } == nil)
    }

    @Test(arguments: ["", ".", "..", "a/b", "/abs", "../x", "a b", "a,b", "a:b", "a\nb", "é", "a\0b", "a*", "id@host"])
    func rejected(_ id: String) {
        #expect(throws: BundleError.invalidContainerID(id)) { try validateContainerID(id) }
        #expect(errorMessage { try validateContainerID(id) } == "invalid container ID format")
    }
}
