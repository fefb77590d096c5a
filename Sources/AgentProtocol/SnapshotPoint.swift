/// The quiescent point a booted guest is snapshotted at: the lines the VMM
/// (`Sources/VMM/Machine/SnapshotPoint.swift`) and the agent
/// (`Sources/sm-init/SnapshotPoint.swift`) exchange over the console, defined once here.
///
/// 1. The VMM boots with `sm.snapshot=1` (`kernelParameter`) on the kernel command line.
/// 2. The agent, once booted and before it opens any vsock connection, puts its
///    console in raw mode and prints `sm-init: snapshot-ready uptime=<s>` (`readyLine`),
///    then blocks reading a line from the console. Nothing is in flight between guest
///    and host then: no vsock connection, no request outstanding but the console's
///    receive buffers, which the driver posted at probe and which wait for input.
/// 3. The VMM sees the line, pauses the vCPU and captures.
/// 4. On restore the VMM writes `sm-wake <64 hex digits of seed> <seconds> <nanoseconds>\n`
///    (`wakePrefix`, `seedBytes`) into the console: the agent credits the seed to the
///    kernel's entropy pool, sets the wall clock, prints `sm-init: resumed uptime=<s>`
///    (`resumedLine`), and carries on as after a boot (dials the host over vsock).
public enum SnapshotPoint {
    public static let kernelParameter = "sm.snapshot=1"
    public static let readyLine = "sm-init: snapshot-ready"
    public static let resumedLine = "sm-init: resumed"
    public static let wakePrefix = "sm-wake "
    public static let seedBytes = 32
    /// The longest snapshot-point line either side reads; longer input is cut (the
    /// wake-up line is under 100 bytes).
    public static let maximumLine = 256
}
