import Foundation

/// A number that only increases, kept on disk: the sequence of this coordinator's summaries.
/// Each value is written (to a new file, renamed into place) before it is used, so neither a
/// restart nor a clock stepping back makes a peer take new summaries for replays.
final class SequenceCounter: @unchecked Sendable {
    let path: String
    private var last: UInt64
    private let lock = NSLock()  // guards `last` and the file

    init(path: String) throws {
        self.path = path
        let text = (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
        last = text.flatMap(UInt64.init) ?? 0
    }

    func next() throws -> UInt64 {
        try lock.withLock {
            let value = last + 1
            try Data("\(value)\n".utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
            last = value
            return value
        }
    }
}
