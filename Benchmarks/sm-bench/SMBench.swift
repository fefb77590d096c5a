// sm-bench: benchmarks that print figures. Run with `swift run -c release sm-bench boot`
// after scripts/build.sh. Absolute times on the nested, emulating build machines are
// not hardware times: compare side by side in the same run.
import ArgumentParser

@main
struct SMBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sm-bench",
        abstract: "sm-runc benchmarks (programs that print figures).",
        subcommands: [BootBenchmark.self, FsBenchmark.self, EngineBenchmark.self, StartBenchmark.self, MemoryBenchmark.self, NetBenchmark.self],
        defaultSubcommand: BootBenchmark.self
    )
}
