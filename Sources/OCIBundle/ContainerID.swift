/// Checks a container id as runc does: non-empty, only `A-Z a-z 0-9 _ + - .`, and not "." or ".."
/// (ids name directories under the state root). runc puts no limit on the length, nor does this.
/// Throws `.invalidContainerID`, whose message is runc's "invalid container ID format".
public func validateContainerID(_ id: String) throws(BundleError) {
    guard !id.isEmpty, id != ".", id != ".." else { throw .invalidContainerID(id) }
    for byte in id.utf8 {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"), UInt8(ascii: "+"),
            UInt8(ascii: "-"), UInt8(ascii: "."):
            continue
        default:
            throw .invalidContainerID(id)
        }
    }
}
