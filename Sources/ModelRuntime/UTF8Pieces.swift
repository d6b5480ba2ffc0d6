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
