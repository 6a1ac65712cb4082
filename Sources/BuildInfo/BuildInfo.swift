import CBuildStamp

/// What build this is: the version (kept here, by hand, one place for the binaries and the
/// package), and the git commit and build date stamped into the linked binary by
/// `scripts/stamp.py` (`make deb`, `make release`; "unknown" in a plain `swift build`).
public enum BuildInfo {
    public static let version = "0.23.0"

    private static let stamp: [Substring] = String(cString: dnsd_build_stamp()).split(separator: "\n", omittingEmptySubsequences: false)

    public static var commit: String { stamp.first.map(String.init).flatMap { $0.isEmpty ? nil : $0 } ?? "unknown" }

    public static var buildDate: String { stamp.dropFirst().first.map(String.init).flatMap { $0.isEmpty ? nil : $0 } ?? "unknown" }

    /// One line: `dnsd 0.23.0 (commit abc1234, built 2026-12-07)`.
    public static var line: String { "dnsd \(version) (commit \(commit), built \(buildDate))" }
}
