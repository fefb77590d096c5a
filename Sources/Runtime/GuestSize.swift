import Foundation
import OCIBundle
import VMM

/// The size of a container's microVM, from its bundle:
///
/// - memory: the annotation `io.sm-runc.memory_mib` (MiB of guest RAM), else
///   `linux.resources.memory.limit` minus the VMM's own share (`vmmOverheadMiB`), so
///   that guest RAM plus the VMM fit in the cgroup and the guest's OOM killer acts
///   before the host's; else `defaultMemoryMiB`.
/// - vCPUs: the annotation `io.sm-runc.vcpus`, else `linux.resources.cpu` quota /
///   period rounded up, else the number of CPUs in `cpu.cpus`; else 1. Never more
///   than `maximumVCPUs` (the host's online CPUs, the guest kernel's limit).
///
/// A value out of range, malformed, or a memory limit the VM cannot live in is an
/// error at `create`, before anything exists.
package struct GuestSize: Codable, Equatable, CustomStringConvertible {
    package var memoryMiB: Int
    package var vcpus: Int
    /// Where each figure came from (for --debug), e.g. "memory from the memory limit, vCPUs by default".
    package var origin = ""

    package init(memoryMiB: Int, vcpus: Int, origin: String = "") {
        self.memoryMiB = memoryMiB
        self.vcpus = vcpus
        self.origin = origin
    }

    package static let memoryAnnotation = "io.sm-runc.memory_mib"
    package static let vcpusAnnotation = "io.sm-runc.vcpus"
    package static let defaultMemoryMiB = 128
    /// The smallest guest the kernel and agent run a container in: 32 MiB gives the
    /// container about 15 MiB (MemTotal 15784 kB; the kernel's image and memory map
    /// take the rest), of which the agent's pages are 8 MiB of page cache the guest
    /// may reclaim. With `vmmOverheadMiB`, a 48 MiB memory limit (the smallest the
    /// runtime-spec validation suite asks for) fits: measured, busybox runs there, and
    /// an allocation past the guest's RAM ends in the guest's OOM killer, not the host's.
    package static let minimumMemoryMiB = 32
    package static let maximumMemoryMiB = Int(X86Layout.maximumRAM >> 20)
    /// What the VMM process itself needs beside guest RAM inside the container's
    /// memory limit (its heap and stacks, KVM's page tables and vCPU state charged
    /// to the cgroup, the file server's buffers): measured at 6-10 MiB of private
    /// memory for one vCPU (`scripts/bench.sh start`), with room to spare. The VMM's
    /// shared libraries are file pages the host reclaims under the limit, not counted.
    package static let vmmOverheadMiB = 16

    package var description: String {
        "\(memoryMiB) MiB, \(vcpus) vCPU\(vcpus == 1 ? "" : "s")" + (origin.isEmpty ? "" : " (\(origin))")
    }

    package static func == (a: GuestSize, b: GuestSize) -> Bool { a.memoryMiB == b.memoryMiB && a.vcpus == b.vcpus }

    package static func of(_ spec: Spec, hostCPUs: Int = onlineCPUs()) throws -> GuestSize {
        let annotations = spec.annotations ?? [:]
        let limitBytes = spec.linux?.resources?.memory?.limit.flatMap { $0 > 0 ? $0 : nil }
        var memory = defaultMemoryMiB
        var memoryOrigin = "default"
        if let text = annotations[memoryAnnotation] {
            guard let value = Int(text), (minimumMemoryMiB...maximumMemoryMiB).contains(value) else {
                throw RuntimeError("annotation \(memoryAnnotation): \"\(text)\" is not a number of MiB from \(minimumMemoryMiB) to \(maximumMemoryMiB)")
            }
            memory = value
            memoryOrigin = memoryAnnotation
            if let limitBytes, Int64(value + vmmOverheadMiB) << 20 > limitBytes {
                throw RuntimeError("annotation \(memoryAnnotation): \(value) MiB of guest RAM + \(vmmOverheadMiB) MiB for the VMM " +
                                   "exceed linux.resources.memory.limit (\(limitBytes) bytes)")
            }
        } else if let limitBytes {
            let available = Int(min(limitBytes >> 20, Int64(maximumMemoryMiB + vmmOverheadMiB))) - vmmOverheadMiB
            guard available >= minimumMemoryMiB else {
                throw RuntimeError("linux.resources.memory.limit: \(limitBytes) bytes is below what this microVM needs " +
                                   "(\(minimumMemoryMiB) MiB of guest RAM + \(vmmOverheadMiB) MiB for the VMM)")
            }
            memory = available
            memoryOrigin = "linux.resources.memory.limit minus \(vmmOverheadMiB) MiB for the VMM"
        }

        let maximum = maximumVCPUs(hostCPUs: hostCPUs)
        var vcpus = 1
        var vcpuOrigin = "default"
        if let text = annotations[vcpusAnnotation] {
            guard let value = Int(text), value >= 1 else {
                throw RuntimeError("annotation \(vcpusAnnotation): \"\(text)\" is not a number of vCPUs (1 or more)")
            }
            guard value <= maximum else {
                throw RuntimeError("annotation \(vcpusAnnotation): \(value) vCPUs, this host gives a microVM at most \(maximum)")
            }
            vcpus = value
            vcpuOrigin = vcpusAnnotation
        } else if let cpu = spec.linux?.resources?.cpu {
            if let quota = cpu.quota, quota > 0 {
                let period = Int64(cpu.period ?? 100_000)
                if period > 0 { vcpus = Int((quota + period - 1) / period) }
                vcpuOrigin = "the CPU quota/period"
            } else if let cpus = cpu.cpus, !cpus.isEmpty {
                vcpus = try cpuCount(cpus)
                vcpuOrigin = "cpu.cpus"
            }
            if vcpus > maximum { vcpuOrigin += ", at most \(maximum) here" }
            vcpus = min(max(vcpus, 1), maximum)
        }
        return GuestSize(memoryMiB: memory, vcpus: vcpus, origin: "memory: \(memoryOrigin); vCPUs: \(vcpuOrigin)")
    }

    /// The number of CPUs in a cpuset list ("0-3,6").
    package static func cpuCount(_ list: String) throws -> Int {
        var count = 0
        for part in list.split(separator: ",") {
            let bounds = part.split(separator: "-", omittingEmptySubsequences: false).map { Int($0.trimmingCharacters(in: .whitespaces)) }
            switch bounds.count {
            case 1 where bounds[0] != nil: count += 1
            case 2 where bounds[0] != nil && bounds[1] != nil && bounds[0]! <= bounds[1]!: count += bounds[1]! - bounds[0]! + 1
            default: throw RuntimeError("linux.resources.cpu.cpus: \"\(list)\" is not a CPU list")
            }
        }
        return count
    }

    /// The most vCPUs a microVM gets here: the guest kernel's limit
    /// (`MachineConfiguration.maximumVCPUs`) or the host's online CPUs, whichever is less.
    package static func maximumVCPUs(hostCPUs: Int = onlineCPUs()) -> Int {
        max(1, min(MachineConfiguration.maximumVCPUs, hostCPUs))
    }

    package static func onlineCPUs() -> Int { max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))) }
}
