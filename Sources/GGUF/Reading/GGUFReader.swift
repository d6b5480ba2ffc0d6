/// Parses the header region of GGUF v2 and v3 files without reading tensor data.
///
/// Every count and length is checked against the file size before memory is reserved, so a
/// hostile header costs at most what the file itself could justify.
public enum GGUFReader {
    static let magic: [UInt8] = Array("GGUF".utf8)
    static let maximumNesting = 8
    /// Array elements a header may hold in all. A value takes far more memory than its
    /// smallest encoding (a uint8 is one byte on disk), so counts are capped outright; real
    /// vocabularies, merges and scores together stay under two million (Gemma 3: 262k tokens).
    static let maximumArrayElements: UInt64 = 4 << 20
    /// Real models have tens of metadata entries and at most a few thousand tensors; counts
    /// are capped outright, since a sparse file's size makes any count look possible.
    static let maximumMetadataEntries: UInt64 = 1 << 16
    static let maximumTensors: UInt64 = 1 << 16
    /// Capacity reserved up front at most: counts come from the file.
    static let reservedUpFront = 1_024
    static let maximumDimensions = 4
    static let maximumTensorNameBytes = 64
    static let defaultAlignment: UInt64 = 32

    /// Reads the header of the file at `path`.
    public static func read(path: String) throws(GGUFError) -> GGUFFile {
        try parse(FileByteSource(path: path))
    }

    /// Reads a header from bytes in memory.
    public static func read(bytes: [UInt8]) throws(GGUFError) -> GGUFFile {
        try parse(MemoryByteSource(bytes: bytes))
    }

    static func parse(_ source: ByteSource) throws(GGUFError) -> GGUFFile {
        var cursor = ByteCursor(source: source)
        guard source.size >= 4, try cursor.readBytes(4, "magic").elementsEqual(magic) else {
            throw GGUFError(.notGGUF, offset: 0, "not a GGUF file: the first four bytes are not 'GGUF'")
        }
        let version = try cursor.readInteger(UInt32.self, "version")
        guard version == 2 || version == 3 else {
            let hint = version.byteSwapped <= 3 ? " (a big-endian file, which is not supported)" : ""
            throw GGUFError(.unsupportedVersion, offset: 4, "GGUF version \(version) is not supported; expected 2 or 3\(hint)")
        }
        let tensorCountOffset = cursor.offset
        let tensorCount = try cursor.readInteger(UInt64.self, "tensor count")
        let metadataCountOffset = cursor.offset
        let metadataCount = try cursor.readInteger(UInt64.self, "metadata count")
        // The smallest metadata entry is a key length, a type and a one-byte value.
        try checkCount(metadataCount, minimumBytes: 13, cursor: cursor, at: metadataCountOffset, what: "metadata entries")
        try checkCap(metadataCount, maximumMetadataEntries, at: metadataCountOffset, what: "metadata entries")

        var metadata: [(key: String, value: GGUFValue)] = []
        metadata.reserveCapacity(Int(min(metadataCount, UInt64(reservedUpFront))))
        var keys = Set<String>()
        for _ in 0..<metadataCount {
            let keyOffset = cursor.offset
            let key = try cursor.readString("metadata key")
            guard keys.insert(key).inserted else {
                throw GGUFError(.duplicateKey, offset: keyOffset, "metadata key '\(key)' appears twice")
            }
            let typeOffset = cursor.offset
            let type = try readType(&cursor, at: typeOffset, what: "value of '\(key)'")
            metadata.append((key, try readValue(type, &cursor, depth: 0, key: key)))
        }

        let alignment = try alignment(of: metadata)
        // The smallest tensor info: name length, one dimension count, a type and an offset.
        try checkCount(tensorCount, minimumBytes: 24, cursor: cursor, at: tensorCountOffset, what: "tensor infos")
        try checkCap(tensorCount, maximumTensors, at: tensorCountOffset, what: "tensors")
        var tensors: [GGUFTensorInfo] = []
        tensors.reserveCapacity(Int(min(tensorCount, UInt64(reservedUpFront))))
        for _ in 0..<tensorCount {
            tensors.append(try readTensorInfo(&cursor, alignment: alignment))
        }
        let dataOffset = align(cursor.offset, to: alignment)
        try checkTensorBounds(tensors, dataOffset: dataOffset, fileSize: source.size)
        return GGUFFile(version: version, metadata: metadata, tensors: tensors, alignment: alignment,
                        dataOffset: dataOffset, fileSize: source.size)
    }

    private static func checkCap(_ count: UInt64, _ cap: UInt64, at offset: UInt64, what: String) throws(GGUFError) {
        guard count <= cap else {
            throw GGUFError(.tooManyEntries, offset: offset, "header claims \(count) \(what); at most \(cap) are read")
        }
    }

    private static func checkCount(_ count: UInt64, minimumBytes: UInt64, cursor: ByteCursor,
                                   at offset: UInt64, what: String) throws(GGUFError) {
        let (needed, overflow) = count.multipliedReportingOverflow(by: minimumBytes)
        guard !overflow, needed <= cursor.remaining else {
            throw GGUFError(.lengthExceedsFile, offset: offset,
                            "header claims \(count) \(what), more than the \(cursor.remaining) bytes left could hold")
        }
    }

    private static func readType(_ cursor: inout ByteCursor, at offset: UInt64, what: String) throws(GGUFError) -> GGUFValueType {
        let raw = try cursor.readInteger(UInt32.self, "type of \(what)")
        guard let type = GGUFValueType(rawValue: raw) else {
            throw GGUFError(.invalidValueType, offset: offset, "unknown value type \(raw) for \(what)")
        }
        return type
    }

    private static func readValue(_ type: GGUFValueType, _ cursor: inout ByteCursor, depth: Int, key: String) throws(GGUFError) -> GGUFValue {
        let what = "value of '\(key)'"
        switch type {
        case .uint8: return .uint8(try cursor.readInteger(UInt8.self, what))
        case .int8: return .int8(try cursor.readInteger(Int8.self, what))
        case .uint16: return .uint16(try cursor.readInteger(UInt16.self, what))
        case .int16: return .int16(try cursor.readInteger(Int16.self, what))
        case .uint32: return .uint32(try cursor.readInteger(UInt32.self, what))
        case .int32: return .int32(try cursor.readInteger(Int32.self, what))
        case .uint64: return .uint64(try cursor.readInteger(UInt64.self, what))
        case .int64: return .int64(try cursor.readInteger(Int64.self, what))
        case .float32: return .float32(Float(bitPattern: try cursor.readInteger(UInt32.self, what)))
        case .float64: return .float64(Double(bitPattern: try cursor.readInteger(UInt64.self, what)))
        case .string: return .string(try cursor.readString(what))
        case .bool:
            let at = cursor.offset
            let raw = try cursor.readInteger(UInt8.self, what)
            guard raw <= 1 else { throw GGUFError(.invalidValue, offset: at, "bool \(what) is \(raw), not 0 or 1") }
            return .bool(raw == 1)
        case .array:
            guard depth < maximumNesting else {
                throw GGUFError(.nestingTooDeep, offset: cursor.offset, "arrays in '\(key)' nest deeper than \(maximumNesting) levels")
            }
            let typeOffset = cursor.offset
            let elementType = try readType(&cursor, at: typeOffset, what: "elements of '\(key)'")
            let countOffset = cursor.offset
            let count = try cursor.readInteger(UInt64.self, "element count of '\(key)'")
            try checkCount(count, minimumBytes: UInt64(elementType.minimumEncodedSize), cursor: cursor,
                           at: countOffset, what: "elements in '\(key)'")
            guard count <= cursor.arrayElementAllowance else {
                throw GGUFError(.lengthExceedsFile, offset: countOffset,
                                "arrays in the header hold more than \(maximumArrayElements) elements in all (at '\(key)'); no real model needs that many")
            }
            cursor.arrayElementAllowance -= count
            var elements: [GGUFValue] = []
            elements.reserveCapacity(Int(min(count, UInt64(reservedUpFront))))
            for _ in 0..<count {
                elements.append(try readValue(elementType, &cursor, depth: depth + 1, key: key))
            }
            return .array(GGUFArray(unchecked: elementType, elements: elements))
        }
    }

    private static func alignment(of metadata: [(key: String, value: GGUFValue)]) throws(GGUFError) -> UInt64 {
        guard let entry = metadata.first(where: { $0.key == "general.alignment" }) else { return defaultAlignment }
        guard case .uint32(let value) = entry.value, value > 0, value & (value - 1) == 0 else {
            throw GGUFError(.invalidAlignment, offset: nil,
                            "general.alignment must be a power of two stored as uint32, found \(entry.value)")
        }
        return UInt64(value)
    }

    private static func readTensorInfo(_ cursor: inout ByteCursor, alignment: UInt64) throws(GGUFError) -> GGUFTensorInfo {
        let start = cursor.offset
        let name = try cursor.readString("tensor name")
        guard name.utf8.count < maximumTensorNameBytes else {
            throw GGUFError(.invalidValue, offset: start, "tensor name '\(name.prefix(80))' is longer than \(maximumTensorNameBytes - 1) bytes")
        }
        let dimsOffset = cursor.offset
        let dimensionCount = try cursor.readInteger(UInt32.self, "dimension count of '\(name)'")
        guard dimensionCount >= 1, dimensionCount <= maximumDimensions else {
            throw GGUFError(.tooManyDimensions, offset: dimsOffset,
                            "tensor '\(name)' has \(dimensionCount) dimensions; 1 to \(maximumDimensions) are allowed")
        }
        var dimensions: [UInt64] = []
        var elements: UInt64 = 1
        for _ in 0..<dimensionCount {
            let dimension = try cursor.readInteger(UInt64.self, "dimensions of '\(name)'")
            let (product, overflow) = elements.multipliedReportingOverflow(by: dimension)
            guard !overflow, dimension <= UInt64(Int64.max) else {
                throw GGUFError(.invalidTensorShape, offset: dimsOffset, "tensor '\(name)' has an impossible shape")
            }
            elements = product
            dimensions.append(dimension)
        }
        let typeOffset = cursor.offset
        let rawType = try cursor.readInteger(UInt32.self, "type of '\(name)'")
        guard let type = GGMLType(rawValue: rawType) else {
            throw GGUFError(.invalidTensorType, offset: typeOffset, "tensor '\(name)' has unknown type \(rawType)")
        }
        guard dimensions[0] % type.blockSize == 0, type.dataSize(elements: elements) != nil else {
            throw GGUFError(.invalidTensorShape, offset: dimsOffset,
                            "tensor '\(name)' row of \(dimensions[0]) elements is not a whole number of \(type.label) blocks")
        }
        let offsetAt = cursor.offset
        let offset = try cursor.readInteger(UInt64.self, "data offset of '\(name)'")
        guard offset % alignment == 0 else {
            throw GGUFError(.tensorOutOfBounds, offset: offsetAt, "tensor '\(name)' data offset \(offset) is not aligned to \(alignment)")
        }
        return GGUFTensorInfo(name: name, dimensions: dimensions, type: type, offset: offset)
    }

    private static func checkTensorBounds(_ tensors: [GGUFTensorInfo], dataOffset: UInt64, fileSize: UInt64) throws(GGUFError) {
        var names = Set<String>()
        for tensor in tensors {
            guard names.insert(tensor.name).inserted else {
                throw GGUFError(.duplicateTensor, offset: nil, "tensor '\(tensor.name)' appears twice")
            }
            let (start, overflowStart) = dataOffset.addingReportingOverflow(tensor.offset)
            let (end, overflowEnd) = start.addingReportingOverflow(tensor.dataSize)
            guard !overflowStart, !overflowEnd, end <= fileSize else {
                throw GGUFError(.tensorOutOfBounds, offset: start,
                                "tensor '\(tensor.name)' needs bytes up to \(overflowStart || overflowEnd ? "beyond 2^64" : "\(end)"), but the file has \(fileSize); the file is truncated or corrupt")
            }
        }
    }

    static func align(_ value: UInt64, to alignment: UInt64) -> UInt64 {
        (value + alignment - 1) / alignment * alignment
    }
}
