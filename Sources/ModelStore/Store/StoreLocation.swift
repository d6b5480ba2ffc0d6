import Foundation

/// Where the per-user store lives when no path is given.
public enum StoreLocation {
    /// `$DEPOT_HOME`, else `$XDG_DATA_HOME/depot`, else `~/.local/share/depot`.
    public static func defaultRoot(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let home = environment["DEPOT_HOME"], !home.isEmpty { return home }
        if let data = environment["XDG_DATA_HOME"], !data.isEmpty { return data + "/depot" }
        let home = environment["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? NSHomeDirectory()
        return home + "/.local/share/depot"
    }
}
