import ArgumentParser
import Foundation
import PodmanSandbox
#if canImport(Glibc)
import Glibc
#endif

/// `sm-bench net`: the container's network under podman's CNI bridge, sm-runc against
/// a baseline runtime (crun) in the same run: TCP throughput container -> host (the
/// host downloads a file from busybox httpd in the container) and host -> container
/// (the host sends to `nc -l` in the container, until it closes), request latency
/// (small HTTP requests through the published port on 127.0.0.1, a new connection
/// each, as busybox httpd has no keep-alive) and connection set-up rate (connect and
/// close through the published port). Only loopback and the benchmark's own podman
/// network (10.213.8.0/24) are addressed.
struct NetBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "net",
        abstract: "Container network throughput, latency and connection rate: sm-runc vs crun under podman (CNI bridge, published port).")

    @Option(help: "The sm-runc binary (default: sm-runc beside sm-bench).") var smRunc: String?
    @Option(help: "The baseline runtime.") var baseline = "/usr/bin/crun"
    @Option(help: "MiB moved each way for throughput.") var megabytes = 16
    @Option(help: "HTTP requests for the latency figure.") var requests = 100
    @Option(help: "Connections for the set-up rate.") var connections = 200

    struct Failure: Error, CustomStringConvertible { let description: String }

    static let network = "sm-bench-net"
    static let image = "localhost/sm-bench-net-bb"

    func run() throws {
        let smRunc = self.smRunc ?? URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
            .deletingLastPathComponent().appendingPathComponent("sm-runc").path
        for tool in [smRunc, baseline, "/usr/bin/podman", "/bin/busybox"] where access(tool, X_OK) != 0 {
            throw Failure(description: "\(tool) is not executable (scripts/setup-deps.sh installs podman, crun and busybox-static)")
        }
        let podman = try PrivatePodman()
        defer { podman.cleanUp() }
        try podman.prepare(megabytes: megabytes)
        print("sm-bench net: podman \(firstLine(try podman.run(["--version"]).stdout)), CNI bridge \(Self.network) 10.213.8.0/24")
        print("  \(megabytes) MiB each way; \(requests) requests; \(connections) connections; all through 127.0.0.1 or the bridge")

        var figures: [String: [String: Double]] = [:]
        var baselineName = URL(fileURLWithPath: baseline).lastPathComponent
        var runtimes = [(baselineName, baseline), ("sm-runc", smRunc)]
        var index = 0
        while index < runtimes.count {
            let (name, path) = runtimes[index]
            let port = 18090 + index * 2
            index += 1
            let started = try podman.run(["--runtime", path, "run", "-d", "--name", "bench-\(name)", "--network", Self.network,
                                          "-p", "\(port):80", "-p", "\(port + 1):5001", Self.image, "sh", "-c",
                                          "httpd -p 80 -h /www; while :; do nc -l -p 5001 > /dev/null; done"])
            if started.status != 0 && name == "crun" && started.stderr.contains("hybrid mode") {
                // crun refuses hosts whose cgroups are hybrid (v1 plus a v2 mount): runc then.
                print("  crun: \(firstLine(started.stderr)); the baseline is runc instead")
                _ = try? podman.run(["--runtime", path, "rm", "-f", "bench-\(name)"])
                baselineName = "runc"
                runtimes[index - 1] = ("runc", access("/usr/bin/runc", X_OK) == 0 ? "/usr/bin/runc" : "/usr/sbin/runc")
                index -= 1
                continue
            }
            guard started.status == 0 else { throw Failure(description: "podman run with \(name): \(started.stderr)") }
            defer { _ = try? podman.run(["--runtime", path, "rm", "-f", "bench-\(name)"]) }
            // Up: the page answers through the published port.
            var up = false
            for _ in 0..<180 where !up {
                up = (try? Self.httpGet(port: UInt16(port), path: "/index.html")) != nil
                if !up { sleep(1) }
            }
            guard up else { throw Failure(description: "\(name): the container's httpd did not answer on 127.0.0.1:\(port)") }
            var f: [String: Double] = [:]
            // Container -> host.
            let downloadStart = Self.monotonic()
            let bytes = try Self.httpGet(port: UInt16(port), path: "/big").count
            f["container->host MiB/s"] = Double(bytes) / 1_048_576 / (Self.monotonic() - downloadStart)
            // Host -> container.
            f["host->container MiB/s"] = Double(megabytes) / (try Self.pump(port: UInt16(port + 1), bytes: megabytes << 20))
            // Latency.
            var latencies: [Double] = []
            for _ in 0..<requests {
                let t = Self.monotonic()
                _ = try Self.httpGet(port: UInt16(port), path: "/index.html")
                latencies.append(Self.monotonic() - t)
            }
            latencies.sort()
            f["request median ms"] = (median(latencies) ?? 0) * 1000
            f["request p99 ms"] = latencies[min(latencies.count - 1, latencies.count * 99 / 100)] * 1000
            // Connection set-up.
            let connectStart = Self.monotonic()
            for _ in 0..<connections {
                let fd = try Self.connectLoopback(port: UInt16(port))
                close(fd)
            }
            f["connections/s"] = Double(connections) / (Self.monotonic() - connectStart)
            figures[name] = f
        }

        print("")
        print("  figure".padding(toLength: 26, withPad: " ", startingAt: 0) + baselineName.padding(toLength: 14, withPad: " ", startingAt: 0)
              + "sm-runc".padding(toLength: 14, withPad: " ", startingAt: 0) + "sm-runc/\(baselineName)")
        for key in ["container->host MiB/s", "host->container MiB/s", "request median ms", "request p99 ms", "connections/s"] {
            let a = figures[baselineName]?[key], b = figures["sm-runc"]?[key]
            let ratio = (a != nil && b != nil && a! > 0) ? fixed(b! / a!, digits: 2) : "-"
            print("  \(key)".padding(toLength: 26, withPad: " ", startingAt: 0) + fixed(a, digits: 2).padding(toLength: 14, withPad: " ", startingAt: 0)
                  + fixed(b, digits: 2).padding(toLength: 14, withPad: " ", startingAt: 0) + ratio)
        }
    }

    static func monotonic() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
    }

    static func connectLoopback(port: UInt16) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket: \(String(cString: strerror(errno)))") }
        var timeout = timeval(tv_sec: 60, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else {
            let error = errno
            close(fd)
            throw Failure(description: "connect 127.0.0.1:\(port): \(String(cString: strerror(error)))")
        }
        return fd
    }

    /// GET `path` (HTTP/1.0) through 127.0.0.1:`port`; the body.
    static func httpGet(port: UInt16, path: String) throws -> [UInt8] {
        let fd = try connectLoopback(port: port)
        defer { close(fd) }
        let request = Array("GET \(path) HTTP/1.0\r\nHost: localhost\r\n\r\n".utf8)
        guard write(fd, request, request.count) == request.count else { throw Failure(description: "send: \(String(cString: strerror(errno)))") }
        var response: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = read(fd, &buffer, buffer.count)
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { throw Failure(description: "receive: \(String(cString: strerror(errno)))") }
            if n == 0 { break }
            response += buffer[0..<n]
        }
        guard response.starts(with: Array("HTTP/1.".utf8)), response.count >= 12, response[9] == UInt8(ascii: "2") else {
            throw Failure(description: "GET \(path): no 2xx answer")
        }
        let separator: [UInt8] = [13, 10, 13, 10]
        guard let end = (0..<max(0, response.count - 3)).first(where: { Array(response[$0..<$0 + 4]) == separator }) else { return [] }
        return Array(response[(end + 4)...])
    }

    /// Sends `bytes` to `nc -l` through 127.0.0.1:`port`, then half-closes and waits
    /// for nc to close (it has read everything); the seconds it took.
    static func pump(port: UInt16, bytes: Int) throws -> Double {
        let fd = try connectLoopback(port: port)
        defer { close(fd) }
        let chunk = [UInt8](repeating: 0x61, count: 1 << 16)
        let start = Self.monotonic()
        var sent = 0
        while sent < bytes {
            let n = write(fd, chunk, min(chunk.count, bytes - sent))
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw Failure(description: "send to nc: \(String(cString: strerror(errno)))") }
            sent += n
        }
        shutdown(fd, Int32(SHUT_WR))
        var buffer = [UInt8](repeating: 0, count: 4096)
        while read(fd, &buffer, buffer.count) > 0 {}
        return Self.monotonic() - start
    }
}

/// A podman of the benchmark's own (storage, CNI config, network) under /tmp.
struct PrivatePodman {
    let work = URL(fileURLWithPath: "/tmp/sm-bench-net-\(getpid())")
    /// podman's CNI bridge: the benchmark's own network is made in `cni/`.
    var sandbox: PodmanSandbox { PodmanSandbox(directory: work.path, networkNone: false) }
    var environment: [String: String] { sandbox.environment }

    init() throws {
        for dir in ["rootfs/bin", "rootfs/www", "rootfs/tmp"] {
            try FileManager.default.createDirectory(at: work.appendingPathComponent(dir), withIntermediateDirectories: true)
        }
    }

    func prepare(megabytes: Int) throws {
        try sandbox.write()
        let rootfs = work.appendingPathComponent("rootfs")
        try FileManager.default.copyItem(atPath: "/bin/busybox", toPath: rootfs.appendingPathComponent("bin/busybox").path)
        for applet in ["sh", "httpd", "nc", "sleep"] {
            try FileManager.default.createSymbolicLink(atPath: rootfs.appendingPathComponent("bin/\(applet)").path, withDestinationPath: "busybox")
        }
        try Data("<html>sm-bench net</html>\n".utf8).write(to: rootfs.appendingPathComponent("www/index.html"))
        try Data(count: megabytes << 20).write(to: rootfs.appendingPathComponent("www/big"))
        let tarball = work.appendingPathComponent("image.tar").path
        guard try execute(["/bin/tar", "-C", rootfs.path, "-cf", tarball, "."]).status == 0 else { throw NetBenchmark.Failure(description: "tar") }
        let imported = try run(["import", tarball, NetBenchmark.image])
        guard imported.status == 0 else { throw NetBenchmark.Failure(description: "podman import: \(imported.stderr)") }
        let network = try run(["network", "create", "--subnet", "10.213.8.0/24", NetBenchmark.network])
        guard network.status == 0 else { throw NetBenchmark.Failure(description: "podman network create: \(network.stderr)") }
    }

    func run(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        try execute(["/usr/bin/podman"] + arguments)
    }

    /// Output to files, waited for with waitpid (podman leaves conmon holding pipes).
    func execute(_ command: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        let result: FileOutputCommand.Result
        do { result = try FileOutputCommand(scratch: work.path, environment: sandbox.environmentList).run(command) }
        catch { throw NetBenchmark.Failure(description: "spawn \(command[0]): \(error)") }
        return (result.status, result.stdout, result.stderr)
    }

    func cleanUp() {
        _ = try? run(["rm", "-a", "-f"])
        _ = try? run(["network", "rm", "-f", NetBenchmark.network])
        _ = try? run(["system", "reset", "-f"])
        try? FileManager.default.removeItem(at: work)
    }
}
