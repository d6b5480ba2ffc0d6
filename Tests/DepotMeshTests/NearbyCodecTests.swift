import Foundation
import MeshProtocol
import Testing

/// The nearby capability record and its chunking, exhaustively: the BLE radio cannot be
/// built on these machines, so the bytes it would carry are tested here.
@Suite struct NearbyCodecTests {
    static let identity = MeshIdentity()
    static var key: Data { identity.key.publicKey.rawRepresentation }

    struct Generator: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            return z ^ (z >> 27)
        }
    }

    func randomRecord(_ random: inout Generator) -> NearbyRecord {
        let letters = Array("abcdefghijklmnopqrstuvwxyz0123456789:._-é模")
        let model = String((0..<Int.random(in: 0...40, using: &random)).map { _ in letters.randomElement(using: &random)! })
        return NearbyRecord(publicKey: Self.key, sequence: UInt64.random(in: 0...UInt64.max, using: &random), activeModel: model.isEmpty ? nil : model,
                            paramSize: Double(Int.random(in: 0...700, using: &random)) / 10,
                            currentLoad: Int.random(in: -1...50, using: &random), freeMemoryMB: UInt32.random(in: 0...UInt32.max, using: &random),
                            host: "10.0.\(Int.random(in: 0...255, using: &random)).\(Int.random(in: 0...255, using: &random))",
                            port: UInt16.random(in: 1...UInt16.max, using: &random),
                            seeded: (0..<Int.random(in: 0...NearbyRecord.maximumSeeded, using: &random)).map { _ in
                                Data((0..<NearbyRecord.seededPrefixBytes).map { _ in UInt8.random(in: 0...255, using: &random) })
                            })
    }

    @Test func recordsRoundTripAndFitABLEValue() throws {
        var random = Generator(state: 42)
        for _ in 0..<2000 {
            let record = randomRecord(&random)
            let bytes = try record.encoded(signedBy: Self.identity)
            #expect(bytes.count <= NearbyRecord.maximumSize)
            #expect(try NearbyRecord(decoding: bytes) == record)
        }
        let loading = NearbyRecord(publicKey: Self.key, sequence: 1, activeModel: "qwen:7b", paramSize: 7, currentLoad: -1, freeMemoryMB: 1, host: "h", port: 1)
        #expect(try NearbyRecord(decoding: loading.encoded(signedBy: Self.identity)).isLoading, "a loading peer says so, and routers skip it")
        let seeded = (0..<NearbyRecord.maximumSeeded).map { Data(repeating: UInt8($0), count: NearbyRecord.seededPrefixBytes) }
        var longest = NearbyRecord(publicKey: Self.key, sequence: 1, activeModel: String(repeating: "m", count: 128), paramSize: 6553.5, currentLoad: 32767,
                                   freeMemoryMB: .max, host: String(repeating: "h", count: 64), port: .max, seeded: seeded)
        #expect(try longest.encoded(signedBy: Self.identity).count <= NearbyRecord.maximumSize)
        longest.seeded.append(Data(repeating: 0xEE, count: NearbyRecord.seededPrefixBytes))
        #expect(throws: NearbyRecord.CodecError.tooLong("seeded")) { try longest.encoded(signedBy: Self.identity) }
        longest.seeded = [Data([1, 2, 3])]
        #expect(throws: NearbyRecord.CodecError.invalidText("seeded"), "a prefix is 8 bytes") { try longest.encoded(signedBy: Self.identity) }
    }

    @Test func aSeedersRecordNamesItsBlobsByPrefixAndVersion2RecordsStillRead() throws {
        let digest = String(repeating: "0123456789abcdef", count: 4)
        let record = NearbyRecord(publicKey: Self.key, sequence: 3, activeModel: nil, paramSize: 0, currentLoad: 0, freeMemoryMB: 1,
                                  host: "10.0.0.7", port: 4302, seeded: [Data(hexDigits: String(digest.prefix(16)))!])
        let decoded = try NearbyRecord(decoding: record.encoded(signedBy: Self.identity))
        #expect(decoded.seeds(sha256: digest) && decoded.seeds(sha256: digest.uppercased()))
        #expect(!decoded.seeds(sha256: "f" + digest.dropFirst()) && !decoded.seeds(sha256: "0123") && !decoded.seeds(sha256: "zz" + digest.dropFirst(2)))
        // A version 2 record (from an agent before seeding) ends with its host: it reads, seeding nothing.
        var old = Array(try record.encoded(signedBy: Self.identity).dropLast(64 + 1 + NearbyRecord.seededPrefixBytes))
        old[2] = 2
        old += try Self.identity.key.signature(for: old)
        let fromOld = try NearbyRecord(decoding: old)
        #expect(fromOld.seeded.isEmpty && fromOld.host == "10.0.0.7" && fromOld.agentId == Self.identity.id)
        // A count beyond what fits is refused before reading.
        var hostile = Array(try record.encoded(signedBy: Self.identity).dropLast(64 + 1 + NearbyRecord.seededPrefixBytes))
        hostile += [UInt8(NearbyRecord.maximumSeeded + 1)]
        hostile += try Self.identity.key.signature(for: hostile)
        #expect(throws: NearbyRecord.CodecError.tooLong("seeded")) { try NearbyRecord(decoding: hostile) }
    }

    @Test func everyTruncationIsAnErrorAndOversizedFieldsAreRefused() throws {
        let record = NearbyRecord(publicKey: Self.key, sequence: 1, activeModel: "qwen2.5-coder:1.5b", paramSize: 1.5, currentLoad: 2,
                                  freeMemoryMB: 4096, host: "192.168.1.20", port: 4302)
        let bytes = try record.encoded(signedBy: Self.identity)
        for length in 0..<bytes.count {
            #expect(throws: NearbyRecord.CodecError.self) { try NearbyRecord(decoding: Array(bytes.prefix(length))) }
        }
        #expect(throws: NearbyRecord.CodecError.trailingBytes(1)) { try NearbyRecord(decoding: bytes + [0]) }
        var future = bytes
        future[2] = 9
        #expect(throws: NearbyRecord.CodecError.unsupportedVersion(9)) { try NearbyRecord(decoding: future) }
        #expect(throws: NearbyRecord.CodecError.badMagic) { try NearbyRecord(decoding: [0x00, 0x50] + bytes.dropFirst(2)) }
        var tooLong = record
        tooLong.activeModel = String(repeating: "x", count: 129)
        #expect(throws: NearbyRecord.CodecError.tooLong("activeModel")) { try tooLong.encoded(signedBy: Self.identity) }
        // A length byte that claims more than the field allows is refused before reading.
        var hostile = bytes
        let modelLengthAt = 2 + 1 + 1 + 32 + 8 + 2 + 2 + 4 + 2
        hostile[modelLengthAt] = 255
        #expect(throws: NearbyRecord.CodecError.tooLong("activeModel")) { try NearbyRecord(decoding: hostile) }
        var badText = bytes
        badText[modelLengthAt + 1] = 0xFF
        #expect(throws: NearbyRecord.CodecError.invalidText("activeModel")) { try NearbyRecord(decoding: badText) }
    }

    @Test func aRecordIsTheSignersAndAnyChangedByteIsRefused() throws {
        let record = NearbyRecord(publicKey: Self.key, sequence: 7, activeModel: "qwen2.5-coder:1.5b", paramSize: 1.5, currentLoad: 0,
                                  freeMemoryMB: 4096, host: "192.168.1.20", port: 4302)
        let bytes = try record.encoded(signedBy: Self.identity)
        #expect(try NearbyRecord(decoding: bytes).agentId == Self.identity.id, "the id is the key's")
        for index in bytes.indices {
            var changed = bytes
            changed[index] ^= 0x01
            #expect(throws: NearbyRecord.CodecError.self, "byte \(index) changed") { try NearbyRecord(decoding: changed) }
        }
        // Another agent's key with this agent's signature, or signing for a key one does not hold.
        let other = MeshIdentity()
        var claimed = bytes
        claimed.replaceSubrange(4..<36, with: other.key.publicKey.rawRepresentation)
        #expect(throws: NearbyRecord.CodecError.badSignature) { try NearbyRecord(decoding: claimed) }
        #expect(throws: NearbyRecord.CodecError.keyMismatch) { try record.encoded(signedBy: other) }
        // A host that would turn the peer's URL into another one is refused, signed or not.
        var sneaky = record
        sneaky.host = "evil.example/x?"
        #expect(throws: NearbyRecord.CodecError.invalidText("host")) { try NearbyRecord(decoding: sneaky.encoded(signedBy: Self.identity)) }
    }

    @Test func randomBytesNeverCrashTheDecoder() {
        var random = Generator(state: 7)
        var decoded = 0
        for _ in 0..<20_000 {
            let bytes = (0..<Int.random(in: 0...80, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }
            if (try? NearbyRecord(decoding: [0x44, 0x50, UInt8.random(in: 2...3, using: &random)] + bytes)) != nil { decoded += 1 }
        }
        #expect(decoded < 20_000, "garbage is mostly refused")
    }

    @Test func chunksReassembleInAnyOrderAndHostileChunksAreRefused() throws {
        var random = Generator(state: 99)
        for size in [0, 1, 505, 506, 507, 2000, 10_000] {
            let payload = (0..<size).map { _ in UInt8.random(in: 0...255, using: &random) }
            var chunks = try NearbyChunks.split(payload, messageID: UInt16(size % 65_536))
            #expect(chunks.allSatisfy { $0.count <= NearbyRecord.maximumSize })
            chunks.shuffle(using: &random)
            var reassembler = NearbyChunks.Reassembler()
            var result: [UInt8]?
            for (position, chunk) in chunks.enumerated() {
                result = try reassembler.add(chunk)
                #expect((result == nil) == (position < chunks.count - 1))
            }
            #expect(result == payload)
        }
        #expect(throws: NearbyChunks.ChunkError.tooLarge) { try NearbyChunks.split(Array(repeating: 0, count: 200_000), messageID: 1) }
        var reassembler = NearbyChunks.Reassembler()
        #expect(throws: NearbyChunks.ChunkError.malformed) { try reassembler.add([0xC7, 1, 0, 1]) }
        #expect(throws: NearbyChunks.ChunkError.malformed) { try reassembler.add([0xC7, 1, 0, 1, 3, 3]) }
        #expect(throws: NearbyChunks.ChunkError.malformed) { try reassembler.add([0xC7, 1, 0, 1, 0, 0]) }
        _ = try reassembler.add([0xC7, 1, 0, 2, 0, 2, 9])
        #expect(throws: NearbyChunks.ChunkError.inconsistent) { try reassembler.add([0xC7, 1, 0, 2, 1, 3, 9]) }
        #expect(throws: NearbyChunks.ChunkError.inconsistent) { try reassembler.add([0xC7, 1, 0, 2, 0, 2, 8]) }
        #expect(try reassembler.add([0xC7, 1, 0, 2, 1, 2, 7]) == [9, 7])
    }
}

/// Have-maps as a peer would send them, honest and hostile.
@Suite struct HaveMapCodecTests {
    @Test func bitfieldsRoundTripInBitTorrentOrderAndRefuseSpareBitsAndWrongLengths() throws {
        for count in [0, 1, 7, 8, 9, 1_024, 1_025] {
            var field = PieceBitfield(count: count)
            let chosen = Set((0..<count).filter { _ in Bool.random() })
            for index in chosen { field.insert(index) }
            #expect(field.population == chosen.count)
            let map = HaveMap(sha256: String(repeating: "a", count: 64), size: UInt64(count) * 1_000, pieceSize: 1_000,
                              complete: false, have: field, fetching: PieceBitfield(count: count))
            let decoded = try JSONDecoder().decode(HaveMap.self, from: JSONEncoder().encode(map))
            #expect(decoded == map && (0..<count).allSatisfy { decoded.have.contains($0) == chosen.contains($0) })
            #expect(decoded.problem(size: UInt64(count) * 1_000, pieceSize: 1_000) == nil)
            let all = PieceBitfield(count: count, all: true)
            #expect(all.population == count && !all.contains(count) && !all.contains(-1))
        }
        var first = PieceBitfield(count: 9)
        first.insert(0)
        #expect(first.bytes == [0x80, 0x00], "piece 0 is the high bit, as in BitTorrent")
        #expect(PieceBitfield(count: 9, bytes: [0, 0x40]) == nil, "a spare bit set")
        #expect(PieceBitfield(count: 9, bytes: [0]) == nil && PieceBitfield(count: 8, bytes: [0, 0]) == nil)

        for body in [#"{"count": 9, "bits": "AEA="}"#, #"{"count": 99999999, "bits": ""}"#, #"{"count": 8, "bits": "!!"}"#,
                     #"{"count": -1, "bits": ""}"#] {
            #expect(throws: DecodingError.self) { try JSONDecoder().decode(PieceBitfield.self, from: Data(body.utf8)) }
        }
        let honest = HaveMap.complete(sha256: String(repeating: "b", count: 64), size: 10_000, pieceSize: 1_000)
        #expect(honest.problem(size: 10_000, pieceSize: 1_000) == nil)
        #expect(honest.problem(size: 10_001, pieceSize: 1_000) != nil && honest.problem(size: 10_000, pieceSize: 2_000) != nil)
    }
}
