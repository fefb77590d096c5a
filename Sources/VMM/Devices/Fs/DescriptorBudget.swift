#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// The host fds the virtio-fs servers of one VMM may hold for the guest: each inode
/// the guest knows (its `O_PATH` fd) and each file it has open costs one, for as long
/// as the guest keeps it (until FORGET, RELEASE or a reset). A guest that never lets
/// go would otherwise take every fd the process may have, and the control socket,
/// `exec`'s stdio and the vsock connections need fds too: past the budget the guest
/// gets ENFILE, past its share's cap (`DescriptorAccount`) EMFILE.
///
/// Shared by the shares of one machine (their devices run on different threads).
public final class DescriptorBudget: Sendable {
    /// How many fds all shares together may hold.
    public let limit: Int
    private let used = Mutex(0)

    public init(limit: Int) {
        precondition(limit > 0, "a descriptor budget needs room for at least one fd")
        self.limit = limit
    }

    /// The budget of a VMM whose RLIMIT_NOFILE soft limit is `fileLimit`: what is left
    /// after `headroom(fileLimit)` fds for everything else the process holds.
    public convenience init(fileLimit: Int) {
        self.init(limit: max(fileLimit - Self.headroom(fileLimit), Self.minimumLimit))
    }

    /// The budget of this process, from its RLIMIT_NOFILE soft limit now.
    public static func forThisProcess() -> DescriptorBudget {
        var limit = rlimit()
        let soft: Int
        if getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0 {
            soft = Int(min(limit.rlim_cur, rlim_t(Int32.max)))      // RLIM_INFINITY is all ones
        } else {
            soft = 1024        // Linux's default soft limit
        }
        return DescriptorBudget(fileLimit: soft)
    }

    /// The fds kept out of the shares' reach: /dev/kvm, the VM and vCPU fds, an
    /// eventfd pair per virtqueue, the epoll sets, the control socket and its
    /// connections (three stdio fds per exec), the vsock connections, logs, the
    /// cgroup. At least 256 (about sixty concurrent execs), a quarter of large limits.
    public static func headroom(_ fileLimit: Int) -> Int { max(256, fileLimit / 4) }

    /// Under a tiny RLIMIT_NOFILE the guest still gets enough to boot (and the kernel's
    /// own EMFILE reaches it like any other failed open).
    public static let minimumLimit = 64

    /// How many fds the shares hold now.
    public var inUse: Int { used.withLock { $0 } }

    /// Takes one fd's room; false when the budget is spent.
    func take() -> Bool {
        used.withLock { used in
            guard used < limit else { return false }
            used += 1
            return true
        }
    }

    func give() {
        used.withLock { used in
            precondition(used > 0, "descriptor budget given back more than was taken")
            used -= 1
        }
    }
}

/// One share's part of its VMM's `DescriptorBudget`: at most `limit` fds held for the
/// guest through this share, so that one share (a bind mount the workload fills)
/// cannot take the whole budget from the others (the agent's own root, the
/// container's rootfs). Not thread-safe: used under the device's lock, as the file
/// server is.
final class DescriptorAccount {
    let limit: Int
    let budget: DescriptorBudget
    /// Named in the errors the guest's requests get.
    let share: String
    private(set) var held = 0

    /// A share's cap: three quarters of its VMM's budget.
    static func shareLimit(of budget: DescriptorBudget) -> Int { max(1, budget.limit * 3 / 4) }

    init(share: String, budget: DescriptorBudget, limit: Int? = nil) {
        self.share = share
        self.budget = budget
        self.limit = min(limit ?? Self.shareLimit(of: budget), budget.limit)
    }

    /// Room for one more fd held for the guest, given back when the slot (and every
    /// copy of the inode or handle that carries it) is gone. EMFILE past the share's
    /// cap, ENFILE past the VMM's budget.
    func take(_ what: @autoclosure () -> String) throws(FuseError) -> DescriptorSlot {
        guard held < limit else {
            throw FuseError(EMFILE, "\(what()): share `\(share)` holds \(held) host fds for the guest, its cap")
        }
        guard budget.take() else {
            throw FuseError(ENFILE, "\(what()): the VMM's shares hold \(budget.limit) host fds for the guest, its budget")
        }
        held += 1
        return DescriptorSlot(self)
    }

    fileprivate func give() {
        held -= 1
        budget.give()
    }
}

/// One fd's room in a `DescriptorAccount`, held by the inode or handle whose fd it is.
final class DescriptorSlot {
    private let account: DescriptorAccount

    fileprivate init(_ account: DescriptorAccount) { self.account = account }

    deinit { account.give() }
}
