import Crypto
import Foundation
import MeshProtocol
import Testing

/// The messages phones would exchange over a BLE characteristic, exhaustively (the radio
/// cannot exist on these machines), and a piece crossing a link that imposes the radio's
/// limits: one 512-byte value at a time, a byte rate, and loss, repeats and reordering.
@Suite struct ChunkStreamTests {
    typealias Generator = NearbyCodecTests.Generator

    static func digest(_ random: inout Generator) -> Data { Data((0..<32).map { _ in UInt8.random(in: 0...255, using: &random) }) }

    static func randomMessage(_ random: inout Generator) -> ChunkMessage {
        let stream = UInt16.random(in: 0...UInt16.max, using: &random)
        let piece = UInt32.random(in: 0...UInt32.max, using: &random), offset = UInt32.random(in: 0...UInt32.max, using: &random)
        switch Int.random(in: 0...5, using: &random) {
        case 0: return .haveMapRequest(stream: stream, sha256: digest(&random))
        case 1:
            let complete = Bool.random(using: &random)
            let bits = complete ? [] : (0..<Int.random(in: 0...ChunkMessage.maximumSliceBytes, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }
            return .haveMapSlice(stream: stream, .init(sha256: digest(&random), size: UInt64.random(in: 0...UInt64.max, using: &random),
                                                       pieceSize: UInt32.random(in: 1...UInt32.max, using: &random), complete: complete,
                                                       firstByte: UInt32.random(in: 0...UInt32.max, using: &random), bytes: bits))
        case 2:
            return .pieceRequest(stream: stream, sha256: digest(&random), piece: piece, offset: offset,
                                 length: UInt32.random(in: 1...ChunkMessage.maximumRequest, using: &random))
        case 3:
            return .pieceData(stream: stream, piece: piece, offset: offset,
                              bytes: (0..<Int.random(in: 1...ChunkMessage.maximumData, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) })
        case 4: return .cancel(stream: stream, piece: piece)
        default:
            return .refused(stream: stream, piece: piece, reason: [.notHeld, .busy, .notVerified].randomElement(using: &random)!)
        }
    }

    @Test func everyMessageRoundTripsWithinOneCharacteristicValue() throws {
        var random = Generator(state: 512)
        for _ in 0..<5_000 {
            let message = Self.randomMessage(&random)
            let bytes = try message.encoded()
            #expect(bytes.count <= ChunkMessage.maximumSize)
            #expect(try ChunkMessage(decoding: bytes) == message)
        }
        let fullest = try ChunkMessage.pieceData(stream: 1, piece: 2, offset: 3, bytes: Array(repeating: 7, count: ChunkMessage.maximumData)).encoded()
        #expect(fullest.count == ChunkMessage.maximumSize, "a data message fills a value exactly")
        #expect(throws: ChunkMessage.CodecError.tooLarge(ChunkMessage.maximumSize + 1)) {
            try ChunkMessage.pieceData(stream: 1, piece: 2, offset: 3, bytes: Array(repeating: 7, count: ChunkMessage.maximumData + 1)).encoded()
        }
        #expect(throws: ChunkMessage.CodecError.tooLarge(ChunkMessage.maximumSize + 1)) {
            try ChunkMessage(decoding: Array(repeating: 0, count: ChunkMessage.maximumSize + 1))
        }
    }

    @Test func truncationsChangedBytesAndBadFieldsAreErrorsNeverAnotherMessage() throws {
        var random = Generator(state: 7)
        for _ in 0..<300 {
            let bytes = try Self.randomMessage(&random).encoded()
            let fixedLength = try ChunkMessage(decoding: bytes).endsWithFixedField
            for length in 0..<bytes.count {
                let prefix = Array(bytes.prefix(length))
                // Data and have-map slices end with a run of bytes: a shorter run is a message too.
                if let shorter = try? ChunkMessage(decoding: prefix) {
                    let again = try shorter.encoded()
                    #expect(!fixedLength && again == prefix, "a cut-off message decodes only as exactly those bytes")
                }
            }
            if fixedLength { #expect(throws: ChunkMessage.CodecError.trailingBytes(1)) { try ChunkMessage(decoding: bytes + [0]) } }
            // The codec is canonical: a changed byte is an error or decodes to a message whose
            // bytes are exactly the changed ones.
            for index in bytes.indices {
                var changed = bytes
                changed[index] ^= UInt8.random(in: 1...255, using: &random)
                if let other = try? ChunkMessage(decoding: changed) { #expect(try other.encoded() == changed) }
            }
        }
        let sha = Self.digest(&random)
        #expect(throws: ChunkMessage.CodecError.badMagic) { try ChunkMessage(decoding: [0xB2, 1, 1, 0, 0] + sha) }
        #expect(throws: ChunkMessage.CodecError.unsupportedVersion(2)) { try ChunkMessage(decoding: [0xB1, 2, 1, 0, 0] + sha) }
        #expect(throws: ChunkMessage.CodecError.unknownType(9)) { try ChunkMessage(decoding: [0xB1, 1, 9, 0, 0]) }
        #expect(throws: ChunkMessage.CodecError.invalid("reason")) { try ChunkMessage(decoding: [0xB1, 1, 6, 0, 0, 0, 0, 0, 1, 0]) }
        #expect(throws: ChunkMessage.CodecError.invalid("length")) {
            try ChunkMessage(decoding: [0xB1, 1, 3, 0, 0] + sha + [0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0])
        }
        #expect(throws: ChunkMessage.CodecError.invalid("length"), "more than one request may ask") {
            try ChunkMessage(decoding: [0xB1, 1, 3, 0, 0] + sha + [0, 0, 0, 1, 0, 0, 0, 0, 0x01, 0, 0, 1])
        }
        #expect(throws: ChunkMessage.CodecError.invalid("bytes")) { try ChunkMessage(decoding: [0xB1, 1, 4, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0]) }
        #expect(throws: ChunkMessage.CodecError.invalid("sha256")) { try ChunkMessage.haveMapRequest(stream: 1, sha256: Data([1, 2])).encoded() }
        #expect(throws: ChunkMessage.CodecError.invalid("complete"), "a complete blob's slice carries no bits") {
            try ChunkMessage.haveMapSlice(stream: 1, .init(sha256: sha, size: 10, pieceSize: 1, complete: true, firstByte: 0, bytes: [0xFF])).encoded()
        }
        #expect(throws: ChunkMessage.CodecError.invalid("pieceSize")) {
            try ChunkMessage.haveMapSlice(stream: 1, .init(sha256: sha, size: 10, pieceSize: 0, complete: false, firstByte: 0, bytes: [])).encoded()
        }
    }

    @Test func randomBytesNeverCrashTheDecoder() {
        var random = Generator(state: 99)
        var decoded = 0
        for _ in 0..<50_000 {
            let body = (0..<Int.random(in: 0...80, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }
            if let message = try? ChunkMessage(decoding: [0xB1, 1, UInt8.random(in: 0...7, using: &random)] + body) {
                decoded += 1
                #expect(message.stream <= UInt16.max)
            }
        }
        #expect(decoded > 0 && decoded < 50_000)
    }

    @Test func haveMapsCrossAsSlicesInAnyOrderAndContradictionsAreRefused() throws {
        var random = Generator(state: 3)
        let sha = Self.digest(&random)
        for count in [0, 1, 8, 9, 3_655, 3_656, 3_657, 20_000] {
            var have = PieceBitfield(count: count)
            for index in 0..<count where Bool.random(using: &random) { have.insert(index) }
            let map = HaveMap(sha256: sha.lowercaseHex, size: UInt64(count) * 1_000 - (count > 0 ? 1 : 0), pieceSize: 1_000, complete: false,
                              have: have, fetching: PieceBitfield(count: count))
            var slices = ChunkMessage.slices(stream: 4, sha256: sha, map: map).compactMap { message -> ChunkMessage.HaveMapSlice? in
                guard case .haveMapSlice(_, let slice) = message, let bytes = try? message.encoded(), bytes.count <= ChunkMessage.maximumSize else { return nil }
                return slice
            }
            #expect(slices.count == max(1, (have.bytes.count + ChunkMessage.maximumSliceBytes - 1) / ChunkMessage.maximumSliceBytes))
            slices.shuffle(using: &random)
            #expect(ChunkMessage.haveMap(from: slices) == map, "\(count) pieces")
            if slices.count > 1 {
                #expect(ChunkMessage.haveMap(from: Array(slices.dropFirst())) == nil, "a slice missing")
                var other = slices
                other[0].size += 1_000
                #expect(ChunkMessage.haveMap(from: other) == nil, "slices of different maps")
            }
            var overrun = slices
            overrun[0].firstByte = UInt32(have.bytes.count)
            overrun[0].bytes = overrun[0].bytes.isEmpty ? [0] : overrun[0].bytes
            #expect(ChunkMessage.haveMap(from: overrun) == nil, "bits beyond the map")
        }
        let complete = HaveMap.complete(sha256: sha.lowercaseHex, size: 5 << 30, pieceSize: 1 << 20)
        let one = ChunkMessage.slices(stream: 1, sha256: sha, map: complete)
        #expect(one.count == 1)
        if case .haveMapSlice(_, let slice)? = one.first { #expect(ChunkMessage.haveMap(from: [slice]) == complete) }
    }

    /// A link with the radio's limits, simulated: values of at most 512 bytes, a byte rate on
    /// a virtual clock, and loss, duplication and reordering from a seeded generator.
    struct LossyLink {
        let bytesPerSecond: Double
        let loss: Double
        var random: Generator
        private(set) var seconds = 0.0
        private(set) var bytesOnAir = 0
        private(set) var lost = 0

        /// What reaches the other side of `messages` sent in a burst.
        mutating func carry(_ messages: [ChunkMessage]) throws -> [ChunkMessage] {
            var arrived: [[UInt8]] = []
            for message in messages {
                let value = try message.encoded()
                guard value.count <= ChunkMessage.maximumSize else { throw ChunkMessage.CodecError.tooLarge(value.count) }
                bytesOnAir += value.count
                seconds += Double(value.count) / bytesPerSecond
                if Double.random(in: 0..<1, using: &random) < loss {
                    lost += 1
                    continue
                }
                arrived.append(value)
                if Double.random(in: 0..<1, using: &random) < 0.02 { arrived.append(value) }
            }
            arrived.shuffle(using: &random)
            return try arrived.map { try ChunkMessage(decoding: $0) }
        }
    }

    @Test func aPieceCrossesALossyRadioLinkAndMatchesItsHash() throws {
        var random = Generator(state: 2026)
        let piece = (0..<(256 << 10)).map { _ in UInt8.random(in: 0...255, using: &random) }
        let sha = Data(SHA256.hash(data: piece))
        var link = LossyLink(bytesPerSecond: 100_000, loss: 0.15, random: Generator(state: 1))
        var assembly = PieceAssembly(piece: 5, length: piece.count)
        var rounds = 0
        // The requester asks for what it lacks, a round at a time (a round ends at a timeout in
        // a real link); the seeder answers each request that arrives with data messages.
        while !assembly.isComplete {
            rounds += 1
            try #require(rounds <= 40, "the piece never completed: still missing \(assembly.missing)")
            let requests = assembly.missing.map { ChunkMessage.pieceRequest(stream: 1, sha256: sha, piece: 5, offset: UInt32($0.lowerBound),
                                                                           length: UInt32($0.count)) }
            for request in try link.carry(requests) {
                guard case .pieceRequest(let stream, _, let index, let offset, let length) = request else { continue }
                let range = Int(offset)..<Int(offset) + Int(length)
                let answer = ChunkMessage.data(stream: stream, piece: index, offset: offset, bytes: Array(piece[range]))
                for message in try link.carry(answer) {
                    let taken = assembly.add(message)
                    #expect(taken)
                }
            }
        }
        #expect(Data(SHA256.hash(data: assembly.bytes)) == sha)
        #expect(link.lost > 0, "the link lost values and the piece still completed")
        let overhead = Double(link.bytesOnAir) / Double(piece.count)
        #expect(overhead < 1.35, "bytes on the air for the piece: \(overhead)× at 15 % loss")
        #expect(abs(link.seconds - Double(link.bytesOnAir) / 100_000) < 1e-6, "the rate holds")
        // A data message for another piece or beyond this one's end changes nothing.
        var strict = PieceAssembly(piece: 5, length: 10)
        let otherPiece = strict.add(.pieceData(stream: 1, piece: 6, offset: 0, bytes: [1]))
        let pastTheEnd = strict.add(.pieceData(stream: 1, piece: 5, offset: 8, bytes: [1, 2, 3]))
        #expect(!otherPiece && !pastTheEnd && strict.missing == [0..<10])
        let inside = strict.add(.pieceData(stream: 1, piece: 5, offset: 2, bytes: [1, 2]))
        #expect(inside && strict.missing == [0..<2, 4..<10])
        // A window of a piece takes offsets in the piece, and only those inside the window.
        var window = PieceAssembly(piece: 5, range: 100..<110)
        let before = window.add(.pieceData(stream: 1, piece: 5, offset: 99, bytes: [1, 2]))
        let after = window.add(.pieceData(stream: 1, piece: 5, offset: 108, bytes: [1, 2, 3]))
        let within = window.add(.pieceData(stream: 1, piece: 5, offset: 104, bytes: [7, 8]))
        #expect(!before && !after && within && window.missing == [0..<4, 6..<10] && window.bytes[4...5] == [7, 8])
    }
}

extension ChunkMessage {
    /// Whether the message's last field has a fixed length (so a byte more is an error).
    var endsWithFixedField: Bool {
        switch self {
        case .pieceData, .haveMapSlice: false
        default: true
        }
    }
}
