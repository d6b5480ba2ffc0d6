/// Sequential little-endian reads over a `ByteSource` through a window, with every length
/// checked against what is left of the file before anything is allocated.
struct ByteCursor {
    private let source: ByteSource
    private(set) var offset: UInt64 = 0
    /// Array elements the header may still declare; see `GGUFReader.maximumArrayElements`.
    var arrayElementAllowance = GGUFReader.maximumArrayElements
    private var window: [UInt8] = []
    private var windowStart: UInt64 = 0
    private static let windowSize = 1 << 20

    init(source: ByteSource) { self.source = source }

    var remaining: UInt64 { source.size - offset }

    /// Loads the window so that `count` bytes from `offset` are in memory.
    private mutating func ensure(_ count: Int, what: @autoclosure () -> String) throws(GGUFError) {
        guard UInt64(count) <= remaining else {
            throw GGUFError(.truncated, offset: offset,
                            "file ends inside \(what()): needs \(count) bytes, \(remaining) left")
        }
        let windowEnd = windowStart + UInt64(window.count)
        if offset >= windowStart && offset + UInt64(count) <= windowEnd { return }
        let length = Int(min(UInt64(max(count, Self.windowSize)), remaining))
        window = try source.read(at: offset, count: length)
        windowStart = offset
    }

    mutating func readInteger<T: FixedWidthInteger>(_: T.Type, _ what: @autoclosure () -> String) throws(GGUFError) -> T {
        let size = MemoryLayout<T>.size
        try ensure(size, what: what())
        let start = Int(offset - windowStart)
        var value: T = 0
        for i in 0..<size { value |= T(truncatingIfNeeded: window[start + i]) << (8 * i) }
        offset += UInt64(size)
        return value
    }

    mutating func readBytes(_ count: Int, _ what: @autoclosure () -> String) throws(GGUFError) -> ArraySlice<UInt8> {
        try ensure(count, what: what())
        let start = Int(offset - windowStart)
        offset += UInt64(count)
        return window[start..<start + count]
    }

    /// A length-prefixed UTF-8 string; the length is checked against the bytes left in the file.
    mutating func readString(_ what: @autoclosure () -> String) throws(GGUFError) -> String {
        let at = offset
        let length = try readInteger(UInt64.self, "length of \(what())")
        guard length <= remaining else {
            throw GGUFError(.lengthExceedsFile, offset: at,
                            "\(what()) claims \(length) bytes but only \(remaining) remain in the file")
        }
        let bytesAt = offset
        guard let text = String(validating: try readBytes(Int(length), what()), as: UTF8.self) else {
            throw GGUFError(.invalidUTF8, offset: bytesAt, "\(what()) is not valid UTF-8")
        }
        return text
    }
}
