#if canImport(Glibc)
import Glibc
#endif
import CKVM

/// The KVM ioctls that fill a header and an array after it (`kvm_cpuid2`,
/// `kvm_msr_list`): called with room for `capacity` entries, doubled (up to
/// `maximum`) while KVM answers E2BIG, which also tells how many it needs.
struct KVMListCall<Header, Entry> {
    let name: String
    let argument: String
    let request: UInt
    /// The header's count field: set before the call, read after it.
    let count: WritableKeyPath<Header, UInt32>
    let initialCapacity: UInt32
    let maximum: UInt32

    func callAsFunction(_ fd: Int32) throws(SystemCallError) -> [Entry] {
        var capacity = initialCapacity
        while true {
            let size = MemoryLayout<Header>.size + Int(capacity) * MemoryLayout<Entry>.stride
            let raw = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 8)
            defer { raw.deallocate() }
            raw.initializeMemory(as: UInt8.self, repeating: 0, count: size)
            let header = raw.assumingMemoryBound(to: Header.self)
            header.pointee[keyPath: count] = capacity
            let rc = ckvm_ioctl_pointer(fd, request, raw)
            if rc == -1 && errno == E2BIG && capacity < maximum {
                capacity = min(maximum, max(capacity * 2, header.pointee[keyPath: count]))
                continue
            }
            if rc == -1 { throw SystemCallError(call: name, argument: argument, errno: .init(rawValue: errno)) }
            let entries = (raw + MemoryLayout<Header>.size).assumingMemoryBound(to: Entry.self)
            return Array(UnsafeBufferPointer(start: entries, count: min(Int(header.pointee[keyPath: count]), Int(capacity))))
        }
    }
}
