/// The version every output and `--version` report; the package takes its version from here.
public enum XferwatchVersion {
    public static let current = "0.1.0"
}
