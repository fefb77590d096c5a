#if canImport(Glibc)
import Glibc
#endif
import SystemPackage

/// A failed system call, named with its argument, in crun's style:
/// "KVM_CREATE_VM `/dev/kvm`: Permission denied".
public struct SystemCallError: Error, CustomStringConvertible, Sendable {
    public let call: String
    public let argument: String
    public let errno: Errno

    public init(call: String, argument: String, errno: Errno) {
        self.call = call
        self.argument = argument
        self.errno = errno
    }

    public var description: String {
        let what = argument.isEmpty ? call : "\(call) `\(argument)`"
        return "\(what): \(errno.description)"
    }
}

/// The one chokepoint that turns a `-1`/errno return into a thrown error.
/// EINTR is retried unless `retryOnInterrupt` is false (KVM_RUN: EINTR means the
/// vCPU was kicked, and the caller must look at why).
@discardableResult
@inline(__always)
func check(
    _ call: @autoclosure () -> String,
    _ argument: @autoclosure () -> String = "",
    retryOnInterrupt: Bool = true,
    _ body: () -> Int32
) throws(SystemCallError) -> Int32 {
    while true {
        let result = body()
        if result != -1 { return result }
        let code = Glibc.errno
        if code == EINTR && retryOnInterrupt { continue }
        throw SystemCallError(call: call(), argument: argument(), errno: Errno(rawValue: code))
    }
}

/// `check` for calls returning `Int` (read/write).
@discardableResult
@inline(__always)
func checkSize(
    _ call: @autoclosure () -> String,
    _ argument: @autoclosure () -> String = "",
    _ body: () -> Int
) throws(SystemCallError) -> Int {
    while true {
        let result = body()
        if result != -1 { return result }
        let code = Glibc.errno
        if code == EINTR { continue }
        throw SystemCallError(call: call(), argument: argument(), errno: Errno(rawValue: code))
    }
}
