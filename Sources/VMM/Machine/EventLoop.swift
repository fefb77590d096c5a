#if canImport(Glibc)
import Glibc
#endif
import CKVM
import Synchronization

/// One epoll loop on a dedicated thread: queue notifications (ioeventfds), host
/// input, and a stop event. Handlers run on the loop thread, one at a time.
public final class EventLoop: @unchecked Sendable {
    public typealias Handler = @Sendable () -> Void
    private let epoll: OwnedDescriptor
    private let stopEvent: OwnedDescriptor
    private let handlers = Mutex<[Int32: (OwnedDescriptor, Handler)]>([:])
    private var thread: OSThread?

    public init() throws(SystemCallError) {
        epoll = OwnedDescriptor(adopting: try check("epoll_create1") { epoll_create1(Int32(EPOLL_CLOEXEC)) })
        stopEvent = try OwnedDescriptor.eventFD("event loop stop")
        try add(stopEvent) {}
    }

    /// Watches `descriptor` for input; `handler` runs on the loop thread when it is readable.
    public func add(_ descriptor: OwnedDescriptor, handler: @escaping Handler) throws(SystemCallError) {
        handlers.withLock { $0[descriptor.rawValue] = (descriptor, handler) }
        var event = epoll_event()
        event.events = EPOLLIN.rawValue
        event.data.fd = descriptor.rawValue
        try check("epoll_ctl", "add fd \(descriptor.rawValue)") { epoll_ctl(epoll.rawValue, EPOLL_CTL_ADD, descriptor.rawValue, &event) }
    }

    public func remove(_ descriptor: OwnedDescriptor) {
        _ = epoll_ctl(epoll.rawValue, EPOLL_CTL_DEL, descriptor.rawValue, nil as UnsafeMutablePointer<epoll_event>?)
        _ = handlers.withLock { $0.removeValue(forKey: descriptor.rawValue) }
    }

    /// Starts the loop thread. `prepare` runs first on that thread (per-thread setup).
    public func start(prepare: @escaping @Sendable () -> Void = {}) throws(SystemCallError) {
        let thread = OSThread(name: "sm-events") { [self] in
            prepare()
            run()
        }
        self.thread = thread
        try thread.start()
    }

    public func stop() {
        stopEvent.signalEvent()
        thread?.join()
        thread = nil
    }

    private func run() {
        var events = [epoll_event](repeating: epoll_event(), count: 16)
        while true {
            let n = events.withUnsafeMutableBufferPointer { epoll_wait(epoll.rawValue, $0.baseAddress, 16, -1) }
            if n < 0 {
                if errno == EINTR { continue }
                return
            }
            for i in 0..<Int(n) {
                let fd = events[i].data.fd
                if fd == stopEvent.rawValue { return }
                if let handler = handlers.withLock({ $0[fd]?.1 }) { handler() }
            }
        }
    }
}
