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
    /// `armed` false: registered but not watched until `setWatching(_:true)`.
    public func add(_ descriptor: OwnedDescriptor, armed: Bool = true, handler: @escaping Handler) throws(SystemCallError) {
        handlers.withLock { $0[descriptor.rawValue] = (descriptor, handler) }
        var event = epoll_event()
        event.events = armed ? EPOLLIN.rawValue : 0
        event.data.fd = descriptor.rawValue
        try check("epoll_ctl", "add fd \(descriptor.rawValue)") { epoll_ctl(epoll.rawValue, EPOLL_CTL_ADD, descriptor.rawValue, &event) }
    }

    /// Watches a registered descriptor for input again, or stops (it stays registered):
    /// for a level-triggered source the handler cannot drain yet (a tap while the
    /// guest has no receive buffers).
    public func setWatching(_ descriptor: OwnedDescriptor, _ on: Bool) throws(SystemCallError) {
        var event = epoll_event()
        event.events = on ? EPOLLIN.rawValue : 0
        event.data.fd = descriptor.rawValue
        try check("epoll_ctl", "modify fd \(descriptor.rawValue)") { epoll_ctl(epoll.rawValue, EPOLL_CTL_MOD, descriptor.rawValue, &event) }
    }

    public func remove(_ descriptor: OwnedDescriptor) {
        _ = epoll_ctl(epoll.rawValue, EPOLL_CTL_DEL, descriptor.rawValue, nil as UnsafeMutablePointer<epoll_event>?)
        _ = handlers.withLock { $0.removeValue(forKey: descriptor.rawValue) }
    }

    /// Starts the loop thread. `prepare` runs first on that thread (per-thread setup).
    public func start(name: String = "sm-events", prepare: @escaping @Sendable () -> Void = {}) throws(SystemCallError) {
        let thread = OSThread(name: name) { [self] in
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
