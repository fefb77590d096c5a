/// A SemVer 2.0.0 version as `ociVersion` carries it ("1.0.2-dev", "1.2.0").
public struct SemanticVersion: Equatable, Sendable, CustomStringConvertible {
    public var major: UInt
    public var minor: UInt
    public var patch: UInt
    /// After "-", without the build metadata ("dev", "rc.1"); "" for a release.
    public var prerelease: String

    public var description: String {
        "\(major).\(minor).\(patch)" + (prerelease.isEmpty ? "" : "-" + prerelease)
    }

    /// Nil unless `text` is MAJOR.MINOR.PATCH with an optional -prerelease and +build.
    public init?(_ text: String) {
        var core = Substring(text)
        if let plus = core.firstIndex(of: "+") {
            guard Self.isIdentifierList(core[core.index(after: plus)...]) else { return nil }
            core = core[..<plus]
        }
        var prerelease: Substring = ""
        if let dash = core.firstIndex(of: "-") {
            prerelease = core[core.index(after: dash)...]
            guard Self.isIdentifierList(prerelease) else { return nil }
            core = core[..<dash]
        }
        let numbers = core.split(separator: ".", omittingEmptySubsequences: false)
        guard numbers.count == 3 else { return nil }
        var values: [UInt] = []
        for number in numbers {
            guard let value = UInt(number), number == "0" || !number.hasPrefix("0") else { return nil }
            values.append(value)
        }
        major = values[0]
        minor = values[1]
        patch = values[2]
        self.prerelease = String(prerelease)
    }

    private static func isIdentifierList(_ text: Substring) -> Bool {
        let identifiers = text.split(separator: ".", omittingEmptySubsequences: false)
        return identifiers.allSatisfy { identifier in
            !identifier.isEmpty && identifier.utf8.allSatisfy { byte in
                switch byte {
                case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                    UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "-"):
                    true
                default:
                    false
                }
            }
        }
    }
}

extension Spec {
    /// The oldest and newest `ociVersion` accepted: 1.0.0 through any 1.2.x (pre-releases included,
    /// so "1.0.2-dev" from podman and containerd is fine).
    public static let minimumVersion = "1.0.0"
    public static let maximumVersion = "1.2.x"

    /// Whether config.json's `ociVersion` is one this library reads: major 1, minor 0 to 2.
    public static func supports(version: String) -> Bool {
        guard let version = SemanticVersion(version) else { return false }
        return version.major == 1 && version.minor <= 2
    }
}
