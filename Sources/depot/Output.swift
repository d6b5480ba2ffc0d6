import Foundation
import ModelStore

/// Printing for people (tables, sizes, ages) and for scripts (JSON).
enum Output {
    static func json<T: Encodable>(_ value: T) {
        print(jsonText(value, pretty: true))
    }

    /// Sorted keys and ISO 8601 dates, so output is stable for scripts; one line unless `pretty`.
    static func jsonText<T: Encodable>(_ value: T, pretty: Bool) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = pretty ? [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes] : [.sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        return String(decoding: try! encoder.encode(value), as: UTF8.self)
    }

    static func error(_ message: String) {
        FileHandle.standardError.write(Data("depot: \(message)\n".utf8))
    }

    /// Left-aligned columns separated by two spaces.
    static func table(_ header: [String], _ rows: [[String]]) {
        let all = [header] + rows
        let widths = header.indices.map { column in all.map { $0[column].count }.max() ?? 0 }
        var text = ""
        for row in all {
            for (column, cell) in row.enumerated() {
                text += cell
                if column < row.count - 1 { text += String(repeating: " ", count: widths[column] - cell.count + 2) }
            }
            text += "\n"
        }
        print(text, terminator: "")
    }

    static func age(_ date: Date?, now: Date = Date()) -> String {
        guard let date else { return "never" }
        let seconds = Int(now.timeIntervalSince(date))
        switch seconds {
        case ..<60: return "just now"
        case ..<3600: return plural(seconds / 60, "minute") + " ago"
        case ..<86400: return plural(seconds / 3600, "hour") + " ago"
        case ..<(86400 * 60): return plural(seconds / 86400, "day") + " ago"
        default: return ISO8601DateFormatter().string(from: date).prefix(10) + ""
        }
    }

    static func plural(_ count: Int, _ noun: String) -> String {
        "\(count) \(noun)\(count == 1 ? "" : "s")"
    }

    static func shortDigest(_ digest: String) -> String { "sha256:" + digest.prefix(12) }

    /// `ready`, `corrupt`, or `unverified` for a ready entry whose hash nothing vouched for.
    static func status(of entry: ModelEntry) -> String {
        entry.status == .ready && !entry.isVerified ? "unverified" : entry.status.rawValue
    }
}
