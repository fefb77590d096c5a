/// A sampling profile of where the guest spends time: the vCPU is kicked out of
/// KVM_RUN at an interval and its RIP recorded. Under an emulating KVM this shows
/// which guest kernel code the emulator pays for; resolve with a System.map.
public struct GuestProfile: Sendable {
    public var samples: [UInt64: Int] = [:]
    public var total: Int { samples.values.reduce(0, +) }

    public init() {}

    public mutating func record(_ rip: UInt64) { samples[rip, default: 0] += 1 }

    /// Samples grouped by the function containing each RIP (`symbols`: sorted (address, name)).
    public func byFunction(_ symbols: [(UInt64, String)]) -> [(String, Int)] {
        var counts: [String: Int] = [:]
        for (rip, n) in samples {
            var lo = 0, hi = symbols.count
            while lo < hi {                      // last symbol with address <= rip
                let mid = (lo + hi) / 2
                if symbols[mid].0 <= rip { lo = mid + 1 } else { hi = mid }
            }
            let name = lo > 0 ? symbols[lo - 1].1 : "0x" + String(rip, radix: 16)
            counts[name, default: 0] += n
        }
        return counts.sorted { $0.value > $1.value }
    }

    /// Parses `nm`/System.map lines ("ffffffff81000000 T _text") into sorted text symbols.
    public static func parseSystemMap(_ text: String) -> [(UInt64, String)] {
        var symbols: [(UInt64, String)] = []
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: " ")
            guard parts.count >= 3, "tTwW".contains(parts[1]), let address = UInt64(parts[0], radix: 16) else { continue }
            symbols.append((address, String(parts[2])))
        }
        return symbols.sorted { $0.0 < $1.0 }
    }
}
