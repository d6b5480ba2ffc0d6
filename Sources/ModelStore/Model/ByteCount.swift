import Foundation

/// Byte counts as people read and write them.
public enum ByteCount {
    private static let units: [(String, UInt64)] = [
        ("TB", 1_000_000_000_000), ("GB", 1_000_000_000), ("MB", 1_000_000), ("KB", 1_000),
    ]
    private static let binaryUnits: [(String, UInt64)] = [("TIB", 1 << 40), ("GIB", 1 << 30), ("MIB", 1 << 20), ("KIB", 1 << 10)]

    /// `1.5 GB`, `340 KB`, `12 B` (decimal units, as disk sizes are sold).
    public static func format(_ bytes: UInt64) -> String {
        for (suffix, scale) in units where bytes >= scale {
            let value = Double(bytes) / Double(scale)
            return (value >= 100 ? String(Int(value.rounded())) : String(Double(Int(value * 10)) / 10)) + " " + suffix
        }
        return "\(bytes) B"
    }

    /// Parses `1234`, `500MB`, `1.5G`, `2GiB` (K/M/G/T decimal, KiB/MiB/GiB/TiB binary); nil when malformed.
    public static func parse(_ text: String) -> UInt64? {
        let trimmed = text.trimmingCharacters(in: .whitespaces).uppercased()
        let digits = trimmed.prefix { $0.isNumber || $0 == "." }
        var suffix = String(trimmed.dropFirst(digits.count)).trimmingCharacters(in: .whitespaces)
        guard let number = Double(digits), number >= 0 else { return nil }
        if suffix.hasSuffix("B") && !suffix.hasSuffix("IB") && suffix.count <= 2 { suffix.removeLast() }
        let scale: UInt64
        switch suffix {
        case "": scale = 1
        case "K", "M", "G", "T": scale = units.first { $0.0.hasPrefix(suffix) }!.1
        default:
            guard let unit = binaryUnits.first(where: { $0.0 == suffix }) else { return nil }
            scale = unit.1
        }
        let value = number * Double(scale)
        guard value < Double(UInt64.max) else { return nil }
        return UInt64(value)
    }
}
