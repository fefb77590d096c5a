#if canImport(Glibc)
import Glibc
#endif
import VMM

// What every benchmark computes and prints its figures with.

func median(_ values: [Double]) -> Double? {
    guard !values.isEmpty else { return nil }
    let sorted = values.sorted()
    return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
}

func mean(_ values: [Double]) -> Double? { values.isEmpty ? nil : values.reduce(0, +) / Double(values.count) }

/// Seconds with 3 decimals, or "-".
func fixed(_ value: Double?, digits: Int = 3) -> String { value.map { formatFixed($0, digits: digits) } ?? "-" }

func firstLine(_ text: String) -> String { text.split(separator: "\n").first.map(String.init) ?? "" }
