import Foundation

/// A podman of its own for tests and benchmarks: storage, runtime state, CNI
/// configuration, events, volumes and temporary files all under one directory, so
/// nothing touches the host's containers, images or networks. The settings are those
/// engines.md §8 traced for podman 4.3 on these machines: cgroupfs (no systemd),
/// a private cgroup namespace, file events, the k8s-file log driver, and ulimits within
/// the host's hard limits (no CAP_SYS_RESOURCE needed: nofile 20000, nproc 32768).
///
/// With `networkNone` the containers get `--network none` by default (a netns with
/// `lo` only); without it podman's CNI bridge, whose configuration lives in `cni/`.
public struct PodmanSandbox: Sendable, Equatable {
    public let directory: String
    public let networkNone: Bool

    public init(directory: String, networkNone: Bool) {
        self.directory = directory
        self.networkNone = networkNone
    }

    public var storageConf: String { directory + "/storage.conf" }
    public var containersConf: String { directory + "/containers.conf" }

    /// The directories the two files name.
    public static let subdirectories = ["storage", "run", "tmp", "vols", "cni"]

    public var storageText: String {
        """
        [storage]
        driver = "overlay"
        graphroot = "\(directory)/storage"
        runroot = "\(directory)/run"

        """
    }

    public var containersText: String {
        (networkNone ? "[containers]\nnetns = \"none\"\n" : "[containers]\n") + """
        cgroupns = "private"
        log_driver = "k8s-file"
        default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
        [engine]
        cgroup_manager = "cgroupfs"
        events_logger = "file"
        events_logfile_path = "\(directory)/tmp/events.log"
        tmp_dir = "\(directory)/tmp"
        volume_path = "\(directory)/vols"
        static_dir = "\(directory)/storage/libpod"
        [network]
        network_backend = "cni"
        network_config_dir = "\(directory)/cni"

        """
    }

    /// Makes the directories and writes storage.conf and containers.conf.
    public func write() throws {
        for name in Self.subdirectories {
            try FileManager.default.createDirectory(atPath: directory + "/" + name, withIntermediateDirectories: true)
        }
        try storageText.write(toFile: storageConf, atomically: true, encoding: .utf8)
        try containersText.write(toFile: containersConf, atomically: true, encoding: .utf8)
    }

    /// What podman needs in its environment to use this sandbox (and a PATH that finds
    /// conmon, iptables and the CNI plugins' helpers).
    public var environment: [String: String] {
        ["PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root",
         "CONTAINERS_CONF": containersConf, "CONTAINERS_STORAGE_CONF": storageConf]
    }

    /// `environment` as `NAME=value` strings, sorted (for posix_spawn's envp).
    public var environmentList: [String] { environment.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" } }
}
