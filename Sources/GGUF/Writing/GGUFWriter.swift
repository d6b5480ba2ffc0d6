#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Builds valid GGUF files (metadata plus tensor data); used to make test fixtures.
public struct GGUFWriter: Sendable {
    private struct PendingTensor: Sendable {
        let name: String
        let dimensions: [UInt64]
        let type: GGMLType
        let data: [UInt8]
    }

    /// Format version written in the header.
    public var version: UInt32
    /// Tensor data alignment; written as `general.alignment` when not the default 32.
    public let alignment: UInt64
    private var metadata: [(key: String, value: GGUFValue)] = []
    private var tensors: [PendingTensor] = []

    /// Starts an empty file.
    public init(version: UInt32 = 3, alignment: UInt32 = 32) {
        precondition(alignment > 0 && alignment & (alignment - 1) == 0, "alignment must be a power of two")
        self.version = version
        self.alignment = UInt64(alignment)
        if alignment != 32 { metadata.append(("general.alignment", .uint32(alignment))) }
    }

    /// Sets a metadata value, replacing an earlier value for the same key.
    public mutating func set(_ key: String, _ value: GGUFValue) {
        if let existing = metadata.firstIndex(where: { $0.key == key }) {
            metadata[existing].value = value
        } else {
            metadata.append((key, value))
        }
    }

    /// Adds a tensor whose raw `data` must match its shape and type exactly.
    public mutating func addTensor(name: String, dimensions: [UInt64], type: GGMLType, data: [UInt8]) throws(GGUFError) {
        let elements = dimensions.reduce(1, *)
        guard let expected = type.dataSize(elements: elements), expected == UInt64(data.count) else {
            throw GGUFError(.invalidTensorShape, offset: nil,
                            "tensor '\(name)' of shape \(dimensions) and type \(type.label) cannot hold \(data.count) bytes")
        }
        guard !tensors.contains(where: { $0.name == name }) else {
            throw GGUFError(.duplicateTensor, offset: nil, "tensor '\(name)' was added twice")
        }
        tensors.append(PendingTensor(name: name, dimensions: dimensions, type: type, data: data))
    }

    /// Adds an F32 tensor from floats.
    public mutating func addTensor(name: String, dimensions: [UInt64], floats: [Float]) throws(GGUFError) {
        var data: [UInt8] = []
        data.reserveCapacity(floats.count * 4)
        for value in floats { data.appendLittleEndian(value.bitPattern) }
        try addTensor(name: name, dimensions: dimensions, type: .f32, data: data)
    }

    /// The complete file.
    public func encoded() -> [UInt8] {
        var out: [UInt8] = Array("GGUF".utf8)
        out.appendLittleEndian(version)
        out.appendLittleEndian(UInt64(tensors.count))
        out.appendLittleEndian(UInt64(metadata.count))
        for (key, value) in metadata {
            out.appendString(key)
            out.appendLittleEndian(value.type.rawValue)
            out.appendValue(value)
        }
        var dataOffset: UInt64 = 0
        var offsets: [UInt64] = []
        for tensor in tensors {
            offsets.append(dataOffset)
            dataOffset = GGUFReader.align(dataOffset + UInt64(tensor.data.count), to: alignment)
        }
        for (tensor, offset) in zip(tensors, offsets) {
            out.appendString(tensor.name)
            out.appendLittleEndian(UInt32(tensor.dimensions.count))
            for dimension in tensor.dimensions { out.appendLittleEndian(dimension) }
            out.appendLittleEndian(tensor.type.rawValue)
            out.appendLittleEndian(offset)
        }
        out.padTo(alignment: alignment)
        for tensor in tensors {
            out += tensor.data
            out.padTo(alignment: alignment)
        }
        return out
    }

    /// Writes the file to `path`, replacing what is there.
    public func write(to path: String) throws(GGUFError) {
        let bytes = encoded()
        let descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            throw GGUFError(.io, offset: nil, "cannot create \(path): \(String(cString: strerror(errno)))")
        }
        defer { close(descriptor) }
        var written = 0
        while written < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress! + written, bytes.count - written) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                throw GGUFError(.io, offset: UInt64(written), "cannot write \(path): \(String(cString: strerror(errno)))")
            }
            written += n
        }
    }
}

extension [UInt8] {
    mutating func appendLittleEndian<T: FixedWidthInteger>(_ value: T) {
        Swift.withUnsafeBytes(of: value.littleEndian) { append(contentsOf: $0) }
    }

    mutating func appendString(_ string: String) {
        appendLittleEndian(UInt64(string.utf8.count))
        append(contentsOf: string.utf8)
    }

    mutating func padTo(alignment: UInt64) {
        let target = Int(GGUFReader.align(UInt64(count), to: alignment))
        append(contentsOf: repeatElement(0, count: target - count))
    }

    mutating func appendValue(_ value: GGUFValue) {
        switch value {
        case .uint8(let v): appendLittleEndian(v)
        case .int8(let v): appendLittleEndian(v)
        case .uint16(let v): appendLittleEndian(v)
        case .int16(let v): appendLittleEndian(v)
        case .uint32(let v): appendLittleEndian(v)
        case .int32(let v): appendLittleEndian(v)
        case .uint64(let v): appendLittleEndian(v)
        case .int64(let v): appendLittleEndian(v)
        case .float32(let v): appendLittleEndian(v.bitPattern)
        case .float64(let v): appendLittleEndian(v.bitPattern)
        case .bool(let v): append(v ? 1 : 0)
        case .string(let v): appendString(v)
        case .array(let array):
            appendLittleEndian(array.elementType.rawValue)
            appendLittleEndian(UInt64(array.elements.count))
            for element in array.elements { appendValue(element) }
        }
    }
}
