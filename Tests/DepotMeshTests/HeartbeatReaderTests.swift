import Foundation
import MeshProtocol
import Testing

/// The coordinator's direct heartbeat reader against Foundation's decoder: whatever the
/// reader accepts must decode to the same heartbeat there; what it does not take (nil) is
/// left to the decoder. And it must actually take the plain form agents send.
@Suite struct HeartbeatReaderTests {
    typealias Generator = NearbyCodecTests.Generator

    func decoded(_ bytes: [UInt8]) -> Heartbeat? { try? JSONDecoder().decode(Heartbeat.self, from: Data(bytes)) }

    /// The reader's answer, checked against the decoder's; true when the reader took it.
    @discardableResult
    func agrees(_ bytes: [UInt8], _ comment: String = "") -> Bool {
        guard let read = HeartbeatReader.read(bytes) else { return false }
        #expect(read == decoded(bytes), "\(comment) \(String(decoding: bytes, as: UTF8.self))")
        return true
    }

    func text(_ random: inout Generator, plain: Bool) -> String {
        let letters = Array(plain ? "abcdefghijklmnopqrstuvwxyz0123456789:._- é模🙂" : "ab\"\\/\n\t\u{1}é")
        return String((0..<Int.random(in: 0...24, using: &random)).map { _ in letters.randomElement(using: &random)! })
    }

    func randomHeartbeat(_ random: inout Generator, plain: Bool = true) -> Heartbeat {
        let sizes: [Double] = [0, 0.5, 1.5, 7, 70.25, 1e-300, 123456.789, Double(Int.random(in: 0...1_000_000, using: &random)) / 1000]
        let loads = [Int.min, -1, 0, 3, Int.max, Int.random(in: -1_000...1_000, using: &random)]
        let bytes: [UInt64] = [0, 1, UInt64.max, UInt64.random(in: 0...UInt64.max, using: &random)]
        var heartbeat = Heartbeat(
            agentId: text(&random, plain: plain), platform: text(&random, plain: plain), freeMemoryMB: bytes.randomElement(using: &random)!,
            address: "http://10.0.0.\(Int.random(in: 0...255, using: &random)):4302/" + text(&random, plain: plain),
            activeModel: Bool.random(using: &random) ? nil : text(&random, plain: plain),
            activeModelParamSize: Bool.random(using: &random) ? nil : sizes.randomElement(using: &random)!,
            modelSwapInProgress: Bool.random(using: &random), currentLoad: loads.randomElement(using: &random)!,
            installedModels: (0..<Int.random(in: 0...4, using: &random)).map { _ in
                .init(name: text(&random, plain: plain), sha256: text(&random, plain: plain), sizeBytes: bytes.randomElement(using: &random)!)
            },
            seeding: Bool.random(using: &random) ? nil : SeedingPolicy(maximumUploads: loads.randomElement(using: &random)!,
                                                                      bytesPerSecond: Bool.random(using: &random) ? nil : bytes.randomElement(using: &random)!))
        heartbeat.protocolVersion = loads.randomElement(using: &random)!
        return heartbeat
    }

    @Test func plainHeartbeatsInEveryLayoutReadAsTheDecoderReadsThem() throws {
        var random = Generator(state: 12)
        for round in 0..<3_000 {
            let heartbeat = randomHeartbeat(&random)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [[], .sortedKeys, .prettyPrinted, [.prettyPrinted, .withoutEscapingSlashes]][round % 4]
            let bytes = Array(try encoder.encode(heartbeat))
            #expect(agrees(bytes), "the reader takes what JSONEncoder writes")
            #expect(decoded(bytes) == heartbeat)
        }
    }

    @Test func unknownFieldsAreSkippedWhateverTheyHold() throws {
        var random = Generator(state: 99)
        let base = String(decoding: try JSONEncoder().encode(randomHeartbeat(&random)), as: UTF8.self)
        let extras = [#""extra": {"a": [1, -2.5e-3, {"b": null}, [], {}], "c": "d", "e": true}"#, #""x": []"#, #""y": -0.0"#,
                      #""z": "模""#, #""agentIds": 1"#, "\"n\":null"]
        for extra in extras {
            let bytes = Array(("{" + extra + "," + base.dropFirst()).utf8)
            #expect(agrees(bytes, extra), "an unknown field does not stop the reader: \(extra)")
        }
    }

    @Test func whatTheReaderDoesNotTakeIsLeftToTheDecoder() throws {
        var random = Generator(state: 5)
        var plain = randomHeartbeat(&random)
        plain.activeModelParamSize = 1.5  // present, to be swapped below
        let base = String(decoding: try JSONEncoder().encode(plain), as: UTF8.self)
        func swapped(_ field: String, _ value: String) -> String {
            let pattern = try! NSRegularExpression(pattern: "\"\(field)\":(\"[^\"]*\"|[^,}\\]]+)")
            return pattern.stringByReplacingMatches(in: base, range: NSRange(base.startIndex..., in: base), withTemplate: NSRegularExpression.escapedTemplate(for: "\"\(field)\":\(value)"))
        }
        let declined = [
            swapped("currentLoad", "1.0"), swapped("currentLoad", "1e2"), swapped("currentLoad", "-0"), swapped("currentLoad", "01"),
            swapped("currentLoad", "null"), swapped("freeMemoryMB", "-1"), swapped("freeMemoryMB", "18446744073709551616"),
            swapped("currentLoad", "9223372036854775808"), swapped("platform", "7"), swapped("platform", #""\ud800x""#),
            swapped("platform", #""\udc00""#), swapped("platform", #""\x41""#), swapped("platform", "\"a\u{1}b\""),
            swapped("modelSwapInProgress", "1"), swapped("modelSwapInProgress", "tru"), swapped("activeModelParamSize", "1e999"),
            swapped("activeModelParamSize", "0.1234567890123456789012345"), swapped("activeModelParamSize", "1e-500"),
            swapped("activeModelParamSize", "0e5"),
            "{\"currentLoad\":1," + base.dropFirst(), base + "x", base + "{}", "\u{FEFF}" + base,
            "{\"a\":[" + String(repeating: "[", count: 40) + String(repeating: "]", count: 41) + "," + base.dropFirst(),
            base.replacingOccurrences(of: "\"platform\"", with: "\"platforms\""),
        ]
        for text in declined {
            #expect(HeartbeatReader.read(Array(text.utf8)) == nil, "declined: \(text)")
        }
        // Escapes, as any encoder may write them, read as the decoder reads them.
        let escaped = [
            swapped("platform", #""li\u006eux""#), swapped("platform", #""\ud83d\ude42 \u00e9\"\\\/\b\f\n\r\t\u0000""#),
            base.replacingOccurrences(of: "\"agentId\"", with: "\"agent\\u0049d\""),
        ]
        for text in escaped {
            #expect(agrees(Array(text.utf8)), "taken: \(text)")
        }
        #expect(agrees(Array((" " + base + " \n").utf8)), "whitespace around the object is JSON")
        for length in 0..<base.utf8.count {
            #expect(HeartbeatReader.read(Array(base.utf8.prefix(length))) == nil, "a cut-off body at \(length) bytes")
        }
    }

    @Test func mutatedBodiesNeverReadDifferentlyFromTheDecoder() throws {
        var random = Generator(state: 2026)
        let alphabet = Array("{}[],:\"\\ 0123456789-+.eEtruefalsn\u{0}\u{7f}é".utf8)
        var taken = 0
        for round in 0..<40_000 {
            var bytes = Array(try JSONEncoder().encode(randomHeartbeat(&random, plain: round % 5 != 0)))
            for _ in 0..<Int.random(in: 1...3, using: &random) where !bytes.isEmpty {
                let index = Int.random(in: 0..<bytes.count, using: &random)
                switch Int.random(in: 0...2, using: &random) {
                case 0: bytes[index] = alphabet.randomElement(using: &random)!
                case 1: bytes.remove(at: index)
                default: bytes.insert(alphabet.randomElement(using: &random)!, at: index)
                }
            }
            if agrees(bytes) { taken += 1 }
        }
        #expect(taken > 1_000, "some mutations still read (\(taken))")
    }
}
