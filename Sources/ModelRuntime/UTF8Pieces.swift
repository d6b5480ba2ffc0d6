/// Turns the bytes of generated tokens into text pieces without splitting a character: a
/// token may end inside a multi-byte UTF-8 sequence (byte tokens, or a character split
/// across tokens), and decoding it alone would send U+FFFD for bytes the next token completes.
/// The incomplete tail is held back until the sequence completes; everything else goes out
/// as it comes, so the pieces joined are exactly `String(decoding: allBytes, as: UTF8.self)`.
struct UTF8Pieces {
    private var held: [UInt8] = []

    /// The text that can go out once `bytes` follow what came before (may be empty).
    mutating func add(_ bytes: [UInt8]) -> String {
        held += bytes
        let cut = Self.completePrefix(held)
        defer { held.removeFirst(cut) }
        return String(decoding: held[..<cut], as: UTF8.self)
    }

    /// What is still held (an incomplete sequence at the very end), decoded as it stands.
    mutating func finish() -> String {
        defer { held = [] }
        return String(decoding: held, as: UTF8.self)
    }

    /// How many leading bytes can be decoded now: all but a final lead byte and the
    /// continuation bytes after it that are fewer than its sequence needs.
    static func completePrefix(_ bytes: [UInt8]) -> Int {
        // A sequence is at most four bytes: its lead is among the last four.
        for back in 1...min(4, bytes.count) {
            let byte = bytes[bytes.count - back]
            if byte & 0xC0 == 0x80 { continue }  // a continuation byte: look further back
            let needed = byte >= 0xF0 && byte <= 0xF4 ? 4 : byte >= 0xE0 && byte < 0xF0 ? 3 : byte >= 0xC2 && byte < 0xE0 ? 2 : 1
            return needed > back ? bytes.count - back : bytes.count
        }
        return bytes.count
    }
}

/// Ends a generation at the first of its stop strings: text goes out as it comes except a
/// tail that could still become a stop string, and the stop string itself never goes out
/// (nor anything after it), so the streamed text and the answer are the same.
struct StopStrings {
    let stops: [String]
    private var held = ""
    private(set) var stopped = false

    init(_ stops: [String]) { self.stops = stops.filter { !$0.isEmpty } }

    /// The text that can go out after `text`; sets `stopped` once a stop string is complete.
    mutating func add(_ text: String) -> String {
        guard !stops.isEmpty else { return text }
        held += text
        if let first = stops.compactMap({ held.range(of: $0) }).min(by: { $0.lowerBound < $1.lowerBound }) {
            stopped = true
            defer { held = "" }
            return String(held[..<first.lowerBound])
        }
        // Keep the longest tail that some stop string starts with.
        let keep = stops.map { stop in
            (1..<max(1, stop.count)).reversed().first { held.hasSuffix(stop.prefix($0)) } ?? 0
        }.max() ?? 0
        let cut = held.index(held.endIndex, offsetBy: -keep)
        defer { held = String(held[cut...]) }
        return String(held[..<cut])
    }

    /// What was held back when the generation ended without a stop string.
    mutating func finish() -> String {
        defer { held = "" }
        return held
    }
}
