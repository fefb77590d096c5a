#if canImport(Glibc)
import Glibc
#endif
import CKVM

/// A dedicated OS thread (not a Swift concurrency pool thread): the VMM's vCPU and
/// event-loop threads each install their own per-thread state (seccomp filter,
/// signal mask) and must stay on the thread that installed it.
public final class OSThread: @unchecked Sendable {
    // Written once by `start` before the thread runs, read after `join`.
    private var handle = pthread_t()
    private let body: @Sendable () -> Void
    public let name: String

    public init(name: String, body: @escaping @Sendable () -> Void) {
        self.name = name
        self.body = body
    }

    public func start() throws(SystemCallError) {
        let unmanaged = Unmanaged.passRetained(self)
        let rc = pthread_create(&handle, nil, { raw in
            let thread = Unmanaged<OSThread>.fromOpaque(raw!).takeRetainedValue()
            // Thread names are limited to 15 bytes by the kernel.
            _ = ckvm_set_thread_name(String(thread.name.prefix(15)))
            thread.body()
            return nil
        }, unmanaged.toOpaque())
        if rc != 0 {
            unmanaged.release()
            throw SystemCallError(call: "pthread_create", argument: name, errno: .init(rawValue: rc))
        }
    }

    /// Sends `signal` to this thread (used to kick a vCPU out of KVM_RUN).
    public func kill(_ signal: Int32) {
        _ = pthread_kill(handle, signal)
    }

    public func join() {
        _ = pthread_join(handle, nil)
    }
}
