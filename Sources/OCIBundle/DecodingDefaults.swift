extension KeyedDecodingContainer {
    /// The value at `key`, or `fallback` when the key is missing or null.
    ///
    /// For fields the spec marks REQUIRED: runc (Go) reads a missing field as its zero value,
    /// and so does this library; validation then reports what is wrong in spec terms
    /// ("process.cwd: must not be empty") instead of the decoder ("missing key").
    func decode<T: Decodable>(_ type: T.Type, forKey key: Key, or fallback: @autoclosure () -> T) throws -> T {
        try decodeIfPresent(type, forKey: key) ?? fallback()
    }
}
