import Testing
@testable import GGUF

/// Hand-built hostile headers: each must give its typed error at the right place, never crash.
@Suite struct BrokenHeaderTests {
    static func header(version: UInt32 = 3, tensors: UInt64 = 0, entries: UInt64) -> [UInt8] {
        var bytes = Array("GGUF".utf8)
        bytes.appendLittleEndian(version)
        bytes.appendLittleEndian(tensors)
        bytes.appendLittleEndian(entries)
        return bytes
    }

    static func entry(_ key: String, _ value: GGUFValue) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.appendString(key)
        bytes.appendLittleEndian(value.type.rawValue)
        bytes.appendValue(value)
        return bytes
    }

    static func tensorInfo(_ name: String, dims: [UInt64], type: UInt32 = 0, offset: UInt64 = 0) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.appendString(name)
        bytes.appendLittleEndian(UInt32(dims.count))
        for d in dims { bytes.appendLittleEndian(d) }
        bytes.appendLittleEndian(type)
        bytes.appendLittleEndian(offset)
        return bytes
    }

    func expectError(_ bytes: [UInt8], _ code: GGUFError.Code, at offset: UInt64? = nil,
                     sourceLocation: SourceLocation = #_sourceLocation) {
        do {
            _ = try GGUFReader.read(bytes: bytes)
            Issue.record("expected \(code), but the header parsed", sourceLocation: sourceLocation)
        } catch {
            #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
            if let offset { #expect(error.offset == offset, "\(error)", sourceLocation: sourceLocation) }
            #expect(!error.description.isEmpty, sourceLocation: sourceLocation)
        }
    }

    @Test func emptyAndWrongMagic() {
        expectError([], .notGGUF, at: 0)
        expectError(Array("GGML".utf8) + [3, 0, 0, 0], .notGGUF, at: 0)
        expectError(Array("PK\u{3}\u{4}zip file".utf8), .notGGUF, at: 0)
    }

    @Test func unsupportedVersions() throws {
        expectError(Self.header(version: 1, entries: 0), .unsupportedVersion, at: 4)
        expectError(Self.header(version: 99, entries: 0), .unsupportedVersion, at: 4)
        do {
            _ = try GGUFReader.read(bytes: Self.header(version: UInt32(3).byteSwapped, entries: 0))
            Issue.record("big-endian file parsed")
        } catch {
            #expect(error.code == .unsupportedVersion)
            #expect(error.message.contains("big-endian"))
        }
    }

    @Test func countsLargerThanTheFileAreRefusedBeforeAllocating() {
        expectError(Self.header(entries: 1 << 62), .lengthExceedsFile, at: 16)
        expectError(Self.header(entries: UInt64.max), .lengthExceedsFile, at: 16)
        expectError(Self.header(tensors: 1 << 60, entries: 0), .lengthExceedsFile, at: 8)

        var hugeString = Self.header(entries: 1)
        hugeString.appendString("k")
        hugeString.appendLittleEndian(GGUFValueType.string.rawValue)
        hugeString.appendLittleEndian(UInt64(1) << 50)
        hugeString += Array(repeating: 0x41, count: 100)
        expectError(hugeString, .lengthExceedsFile, at: 24 + 9 + 4)

        var hugeArray = Self.header(entries: 1)
        hugeArray.appendString("k")
        hugeArray.appendLittleEndian(GGUFValueType.array.rawValue)
        hugeArray.appendLittleEndian(GGUFValueType.uint64.rawValue)
        hugeArray.appendLittleEndian(UInt64(1) << 40)
        hugeArray += Array(repeating: 0, count: 64)
        expectError(hugeArray, .lengthExceedsFile, at: 24 + 9 + 4 + 4)

        var hugeKey = Self.header(entries: 1)
        hugeKey.appendLittleEndian(UInt64.max)
        hugeKey += Array(repeating: 0, count: 32)
        expectError(hugeKey, .lengthExceedsFile, at: 24)
    }

    @Test func hugeArraysOfSmallValuesAreCappedBeforeAllocating() {
        var bytes = Self.header(entries: 1)
        bytes.appendString("k")
        bytes.appendLittleEndian(GGUFValueType.array.rawValue)
        bytes.appendLittleEndian(GGUFValueType.uint8.rawValue)
        let count = GGUFReader.maximumArrayElements + 1
        bytes.appendLittleEndian(count)
        bytes += [UInt8](repeating: 0, count: Int(count))
        expectError(bytes, .lengthExceedsFile, at: 24 + 9 + 4 + 4)
    }

    @Test func splitValuesTooLargeForIntAreIgnored() throws {
        var writer = GGUFWriter()
        writer.set("split.no", .uint64(UInt64.max))
        writer.set("split.count", .uint64(1 << 63))
        let facts = try GGUFReader.read(bytes: writer.encoded()).facts
        #expect(facts.splitIndex == nil)
        #expect(facts.splitCount == nil)
    }

    @Test func badValues() {
        var unknownType = Self.header(entries: 1)
        unknownType.appendString("k")
        unknownType.appendLittleEndian(UInt32(13))
        unknownType += [0, 0, 0, 0]
        expectError(unknownType, .invalidValueType, at: 24 + 9)

        var badBool = Self.header(entries: 1)
        badBool.appendString("k")
        badBool.appendLittleEndian(GGUFValueType.bool.rawValue)
        badBool.append(2)
        expectError(badBool, .invalidValue, at: 24 + 9 + 4)

        expectError(Self.header(entries: 2) + Self.entry("a", .uint8(1)) + Self.entry("a", .uint8(2)), .duplicateKey)

        for alignment: GGUFValue in [.uint32(0), .uint32(3), .uint64(32), .string("32")] {
            expectError(Self.header(entries: 1) + Self.entry("general.alignment", alignment), .invalidAlignment)
        }
    }

    @Test func arraysNestingTooDeep() {
        var bytes = Self.header(entries: 1)
        bytes.appendString("deep")
        bytes.appendLittleEndian(GGUFValueType.array.rawValue)
        for _ in 0..<20 {
            bytes.appendLittleEndian(GGUFValueType.array.rawValue)
            bytes.appendLittleEndian(UInt64(1))
        }
        bytes += Array(repeating: 0, count: 64)
        expectError(bytes, .nestingTooDeep)
    }

    @Test func badTensorInfos() {
        let base = Self.header(tensors: 1, entries: 0)
        let padding = Array(repeating: UInt8(0), count: 256)
        expectError(base + Self.tensorInfo("t", dims: [1, 1, 1, 1, 1]) + padding, .tooManyDimensions)
        expectError(base + Self.tensorInfo("t", dims: []) + padding, .tooManyDimensions)
        expectError(base + Self.tensorInfo("t", dims: [4], type: 4) + padding, .invalidTensorType)
        expectError(base + Self.tensorInfo("t", dims: [1 << 40, 1 << 40]) + padding, .invalidTensorShape)
        expectError(base + Self.tensorInfo("t", dims: [31], type: GGMLType.q4_0.rawValue) + padding, .invalidTensorShape)
        expectError(base + Self.tensorInfo("t", dims: [4], offset: 7) + padding, .tensorOutOfBounds)
        expectError(base + Self.tensorInfo("t", dims: [4], offset: 1 << 20) + padding, .tensorOutOfBounds)
        expectError(base + Self.tensorInfo("t", dims: [4], offset: UInt64.max - 31) + padding, .tensorOutOfBounds)
        expectError(base + Self.tensorInfo(String(repeating: "n", count: 64), dims: [4]) + padding, .invalidValue)
        let two = Self.header(tensors: 2, entries: 0)
        expectError(two + Self.tensorInfo("t", dims: [4]) + Self.tensorInfo("t", dims: [4], offset: 32) + padding,
                    .duplicateTensor)
    }

    @Test func everyTruncationOfARealModelIsAnError() throws {
        let bytes = TinyModels.llama().encoded()
        let file = try GGUFReader.read(bytes: bytes)
        let lastTensorEnd = Int(file.dataOffset + file.tensors.map { $0.offset + $0.dataSize }.max()!)
        let cuts = Array(0..<Int(file.dataOffset)) + stride(from: Int(file.dataOffset), to: lastTensorEnd, by: 997)
        for length in cuts {
            #expect(throws: GGUFError.self, "prefix of \(length) bytes") {
                try GGUFReader.read(bytes: Array(bytes[..<length]))
            }
        }
    }

    @Test func randomCorruptionNeverCrashes() throws {
        let original = TinyModels.llama().encoded()
        let headerEnd = Int(try GGUFReader.read(bytes: original).dataOffset)
        var random = SplitMix64(seed: 42)
        var failures = 0
        for _ in 0..<3000 {
            var bytes = original
            for _ in 0..<(1 + Int(random.next() % 4)) {
                bytes[Int(random.next() % UInt64(headerEnd))] = UInt8(truncatingIfNeeded: random.next())
            }
            do { _ = try GGUFReader.read(bytes: bytes) } catch { failures += 1 }
        }
        // Most flips land in strings and weights-free header bytes and parse; many must not.
        #expect(failures > 100)
    }
}

/// Counts a sparse file makes look possible, and text that is not UTF-8.
@Suite struct HostileCountTests {
    @Test func metadataAndTensorCountsAreCappedWhateverTheFileSize() {
        let entries = GGUFReader.maximumMetadataEntries + 1
        BrokenHeaderTests().expectError(BrokenHeaderTests.header(entries: entries) + [UInt8](repeating: 0, count: Int(entries) * 13),
                                        .tooManyEntries, at: 16)
        let tensors = GGUFReader.maximumTensors + 1
        BrokenHeaderTests().expectError(BrokenHeaderTests.header(tensors: tensors, entries: 0) + [UInt8](repeating: 0, count: Int(tensors) * 24),
                                        .tooManyEntries, at: 8)
    }

    @Test func keysNamesAndStringsMustBeUTF8() {
        var key = BrokenHeaderTests.header(entries: 1)
        key.appendLittleEndian(UInt64(2))
        key += [0xFF, 0xFE]
        key.appendLittleEndian(GGUFValueType.uint8.rawValue)
        key.append(1)
        BrokenHeaderTests().expectError(key, .invalidUTF8, at: 32)

        var value = BrokenHeaderTests.header(entries: 1)
        value.appendString("general.name")
        value.appendLittleEndian(GGUFValueType.string.rawValue)
        value.appendLittleEndian(UInt64(3))
        value += [0x61, 0xC3, 0x28]  // 'a', then a two-byte sequence broken off
        BrokenHeaderTests().expectError(value, .invalidUTF8, at: 24 + 8 + 12 + 4 + 8)
    }
}
