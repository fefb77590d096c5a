import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Tests that need /dev/kvm say so. Where it is missing they FAIL with this reason
/// (never skip silently): the project's CI machines have it.
func requireKVM(sourceLocation: SourceLocation = #_sourceLocation) -> Bool {
    if access("/dev/kvm", R_OK | W_OK) == 0 { return true }
    Issue.record("this test needs read-write /dev/kvm (run as root on a KVM host)", sourceLocation: sourceLocation)
    return false
}
