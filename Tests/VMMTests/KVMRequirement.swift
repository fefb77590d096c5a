import Testing
import VMM

/// Needs read-write /dev/kvm: FAILS with the reason where it is missing, never skips.
func requireKVM() throws {
    let reason = KVMSystem.unavailableReason()
    try #require(reason == nil, Comment(rawValue: reason ?? ""))
}
