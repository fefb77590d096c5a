import Testing
import Foundation
import CPosix

/// What the VMM inherits from `run`: run ignores (and forwards) INT, TERM, HUP, QUIT,
/// USR1, USR2 and WINCH, but a process it spawns starts with them at their defaults
/// and unblocked (`cposix_spawn_default_signals`, used by `VMMProcess.spawnHelper`).
@Suite(.serialized) struct SpawnSignalsTests {
    /// The child's SigIgn and SigBlk masks from /proc/self/status, as numbers.
    func childMasks(defaults: Bool) throws -> (ignored: UInt64, blocked: UInt64) {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("spawn-signals-\(getpid())").path
        defer { unlink(out) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, out, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        if defaults { #expect(cposix_spawn_default_signals(&attributes) == 0) }
        #expect(cposix_spawn_setsid(&attributes) == 0)
        var flags: Int16 = 0
        posix_spawnattr_getflags(&attributes, &flags)
        #expect(flags & 0x80 != 0, "POSIX_SPAWN_SETSID (glibc's 0x80) kept with the other flags")
        if defaults { #expect(flags & Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK) == Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK)) }
        let words: [String] = ["/bin/grep", "-E", "^Sig(Ign|Blk):", "/proc/self/status"]
        let argv = words.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        #expect(posix_spawn(&pid, "/bin/grep", &actions, &attributes, argv, environ) == 0)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        var masks: [String: UInt64] = [:]
        for line in try String(contentsOfFile: out, encoding: .utf8).split(separator: "\n") {
            let fields = line.split(whereSeparator: { $0 == ":" || $0 == "\t" || $0 == " " })
            if fields.count == 2 { masks[String(fields[0])] = UInt64(fields[1], radix: 16) }
        }
        return (masks["SigIgn"] ?? .max, masks["SigBlk"] ?? .max)
    }

    /// The mask is this thread's alone; dispositions are the whole test process's, so
    /// only two signals nothing else here uses are ignored for the check (WINCH, whose
    /// default is to ignore anyway, and USR2).
    @Test func theChildStartsWithTheForwardedSignalsAtTheirDefaults() throws {
        let forwarded = [SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH]
        let ignoredHere = [SIGUSR2, SIGWINCH]
        func bits(_ numbers: [Int32]) -> UInt64 { numbers.reduce(UInt64(0)) { $0 | (1 << UInt64($1 - 1)) } }
        var blocked = sigset_t(), previous = sigset_t()
        sigemptyset(&blocked)
        for number in forwarded { sigaddset(&blocked, number) }
        for number in ignoredHere { signal(number, SIG_IGN) }
        pthread_sigmask(SIG_BLOCK, &blocked, &previous)
        defer {
            pthread_sigmask(SIG_SETMASK, &previous, nil)
            signal(SIGUSR2, SIG_DFL)
            signal(SIGWINCH, SIG_DFL)
        }
        // Without the reset the child inherits both: the check can fail.
        let inherited = try childMasks(defaults: false)
        #expect(inherited.ignored & bits(ignoredHere) == bits(ignoredHere) && inherited.blocked & bits(forwarded) == bits(forwarded))
        let reset = try childMasks(defaults: true)
        #expect(reset.ignored & bits(ignoredHere) == 0, "ignored in the child: \(String(reset.ignored, radix: 16))")
        #expect(reset.blocked == 0, "blocked in the child: \(String(reset.blocked, radix: 16))")
    }
}
