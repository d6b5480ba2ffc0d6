import Foundation
import GGUF
import Testing
@testable import ModelRuntime

/// Streamed text must be the generated text: no character split across pieces, and the
/// pieces joined exactly the non-streamed answer.
@Suite struct UTF8PiecesTests {
    @Test func piecesJoinedAreTheWholeDecodingHoweverTheBytesAreCut() {
        var random = SystemRandomNumberGenerator()
        let text = Array("Größe: 東京 🙂 naïve — ok".utf8)
        for _ in 0..<2_000 {
            // Valid text cut anywhere: no piece carries a replacement character.
            var pieces = UTF8Pieces(), joined = ""
            var rest = text[...]
            while !rest.isEmpty {
                let cut = Int.random(in: 1...min(5, rest.count), using: &random)
                let piece = pieces.add(Array(rest.prefix(cut)))
                #expect(!piece.contains("\u{FFFD}"), "a character was split: \(piece)")
                joined += piece
                rest = rest.dropFirst(cut)
            }
            joined += pieces.finish()
            #expect(joined == String(decoding: text, as: UTF8.self))
        }
        for _ in 0..<5_000 {
            // Any bytes at all, any cuts: joined is what decoding them at once gives.
            let bytes = (0..<Int.random(in: 0...24, using: &random)).map { _ in
                [0x41, 0x80, 0xBF, 0xC2, 0xC3, 0xE0, 0xE2, 0xED, 0xF0, 0xF4, 0xF5, 0xFF, UInt8.random(in: 0...255, using: &random)].randomElement(using: &random)!
            }
            var pieces = UTF8Pieces(), joined = "", rest = bytes[...]
            while !rest.isEmpty {
                let cut = Int.random(in: 1...rest.count, using: &random)
                joined += pieces.add(Array(rest.prefix(cut)))
                rest = rest.dropFirst(cut)
            }
            joined += pieces.finish()
            #expect(joined == String(decoding: bytes, as: UTF8.self), "\(bytes)")
        }
    }

    @Test func stopStringsEndTheAnswerWhereverTheTextIsCut() {
        var random = SystemRandomNumberGenerator()
        let stops = ["\n\nUser:", "END", "ö!"]
        let alphabet = Array("ab \nUser:ENDö!")
        for _ in 0..<5_000 {
            let text = String((0..<Int.random(in: 0...60, using: &random)).map { _ in alphabet.randomElement(using: &random)! })
            let first = stops.compactMap { text.range(of: $0) }.min { $0.lowerBound < $1.lowerBound }
            let expected = first.map { String(text[..<$0.lowerBound]) } ?? text
            var filter = StopStrings(stops), out = "", rest = Substring(text)
            while !rest.isEmpty && !filter.stopped {
                let cut = Int.random(in: 1...min(4, rest.count), using: &random)
                out += filter.add(String(rest.prefix(cut)))
                rest = rest.dropFirst(cut)
            }
            if !filter.stopped { out += filter.finish() }
            #expect(out == expected, "\(text.debugDescription)")
            #expect(filter.stopped == (first != nil))
        }
    }
}
