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

/// posix_spawn attributes for a timed command: default dispositions for the signals
/// this process ignores or handles (they would stay ignored in the child) and an
/// empty signal mask. Call `posix_spawnattr_destroy` after the spawn.
func childSpawnAttributes() -> posix_spawnattr_t {
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    var defaults = sigset_t()
    sigemptyset(&defaults)
    for number in [SIGINT, SIGTERM, SIGPIPE, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGCHLD] { sigaddset(&defaults, number) }
    posix_spawnattr_setsigdefault(&attributes, &defaults)
    var mask = sigset_t()
    sigemptyset(&mask)
    posix_spawnattr_setsigmask(&attributes, &mask)
    posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))
    return attributes
}
