/// The type tag of a GGUF metadata value, as stored in the file.
public enum GGUFValueType: UInt32, Sendable, CaseIterable, Codable {
    case uint8 = 0, int8 = 1, uint16 = 2, int16 = 3, uint32 = 4, int32 = 5
    case float32 = 6, bool = 7, string = 8, array = 9, uint64 = 10, int64 = 11, float64 = 12

    /// Encoded size of one value of this type, or nil when the size depends on the value.
    public var fixedSize: Int? {
        switch self {
        case .uint8, .int8, .bool: 1
        case .uint16, .int16: 2
        case .uint32, .int32, .float32: 4
        case .uint64, .int64, .float64: 8
        case .string, .array: nil
        }
    }

    /// The fewest bytes one value of this type can occupy; bounds array counts before allocating.
    var minimumEncodedSize: Int {
        switch self {
        case .string: 8  // length prefix
        case .array: 12  // element type + count
        default: fixedSize!
        }
    }
}

/// One GGUF metadata value; arrays may nest.
public enum GGUFValue: Sendable, Equatable {
    case uint8(UInt8), int8(Int8), uint16(UInt16), int16(Int16), uint32(UInt32), int32(Int32)
    case float32(Float), bool(Bool), string(String), array(GGUFArray)
    case uint64(UInt64), int64(Int64), float64(Double)

    /// The type tag this value is written with.
    public var type: GGUFValueType {
        switch self {
        case .uint8: .uint8
        case .int8: .int8
        case .uint16: .uint16
        case .int16: .int16
        case .uint32: .uint32
        case .int32: .int32
        case .float32: .float32
        case .bool: .bool
        case .string: .string
        case .array: .array
        case .uint64: .uint64
        case .int64: .int64
        case .float64: .float64
        }
    }

    /// The value as an unsigned integer when it is a non-negative integer of any width.
    public var unsignedInteger: UInt64? {
        switch self {
        case .uint8(let v): UInt64(v)
        case .uint16(let v): UInt64(v)
        case .uint32(let v): UInt64(v)
        case .uint64(let v): v
        case .int8(let v): v >= 0 ? UInt64(v) : nil
        case .int16(let v): v >= 0 ? UInt64(v) : nil
        case .int32(let v): v >= 0 ? UInt64(v) : nil
        case .int64(let v): v >= 0 ? UInt64(v) : nil
        default: nil
        }
    }

    /// The value as a string, when it is one.
    public var string: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    /// The value as a bool, when it is one.
    public var bool: Bool? {
        if case .bool(let b) = self { return b }
        return nil
    }

    /// The elements, when the value is an array.
    public var arrayElements: [GGUFValue]? {
        if case .array(let a) = self { return a.elements }
        return nil
    }
}

/// A typed GGUF array: every element has `elementType`.
public struct GGUFArray: Sendable, Equatable {
    /// The type tag shared by every element.
    public let elementType: GGUFValueType
    /// The elements, in file order.
    public let elements: [GGUFValue]

    /// Makes an array, checking that every element has the declared type.
    public init(elementType: GGUFValueType, elements: [GGUFValue]) throws(GGUFError) {
        if let bad = elements.firstIndex(where: { $0.type != elementType }) {
            throw GGUFError(
                .invalidValue, offset: nil,
                "array element \(bad) is \(elements[bad].type), but the array holds \(elementType)")
        }
        self.elementType = elementType
        self.elements = elements
    }

    /// Reader-side initialiser: the reader has already checked the element types.
    init(unchecked elementType: GGUFValueType, elements: [GGUFValue]) {
        self.elementType = elementType
        self.elements = elements
    }
}

extension GGUFValue {
    /// An array of strings, the most common array in tokenizer metadata.
    public static func strings(_ values: [String]) -> GGUFValue {
        .array(GGUFArray(unchecked: .string, elements: values.map(GGUFValue.string)))
    }

    /// An array of 32-bit floats.
    public static func float32s(_ values: [Float]) -> GGUFValue {
        .array(GGUFArray(unchecked: .float32, elements: values.map(GGUFValue.float32)))
    }

    /// An array of 32-bit signed integers.
    public static func int32s(_ values: [Int32]) -> GGUFValue {
        .array(GGUFArray(unchecked: .int32, elements: values.map(GGUFValue.int32)))
    }
}
