import Testing
import Foundation
@testable import Runtime

/// All suites of the CLI's host side nest here (`swift test --filter RuntimeTests`).
@Suite("sm-runc host side") enum RuntimeTests {}

/// A fresh directory under /tmp (mkdtemp, so 0700), removed with everything in it
/// when released.
final class TemporaryDirectory {
    let path: String

    init(_ prefix: String = "sm-runc-test") throws {
        var template = Array("/tmp/\(prefix)-XXXXXX".utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw RuntimeError.system("mkdtemp", "/tmp/\(prefix)-XXXXXX")
        }
        path = String(cString: made)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// The tests that chown or reach other users' files act as root: FAILS with the
/// reason otherwise, never skips.
func requireRoot() throws {
    try #require(geteuid() == 0, "this test changes file owners: run the tests as root")
}

/// lstat(2) of `path`, or nil.
func lstatus(_ path: String) -> stat? {
    var st = stat()
    return lstat(path, &st) == 0 ? st : nil
}
