/// A heartbeat read straight from its JSON bytes, for the coordinator's hot path: Foundation's
/// decoder costs more than all the rest of a heartbeat's work. It reads the form encoders write
/// (integers as plain digits, strings valid UTF-8 with JSON's escapes) and gives up, returning
/// nil, on anything else: bad JSON, a missing or mistyped field, a number in another form, a
/// repeated field, a lone surrogate. The caller then decodes with `JSONDecoder`, which reads
/// the rest and names the field at fault. What this reader accepts, `JSONDecoder` decodes to
/// the same value (tests and a fuzz target compare the two).
public enum HeartbeatReader {
    /// Nesting accepted inside fields this reader skips.
    static let maximumDepth = 32

    public static func read(_ bytes: UnsafeRawBufferPointer) -> Heartbeat? {
        var scanner = Scanner(bytes: bytes)
        guard let heartbeat = scanner.heartbeat() else { return nil }
        scanner.skipWhitespace()
        return scanner.atEnd ? heartbeat : nil
    }

    public static func read(_ bytes: [UInt8]) -> Heartbeat? {
        bytes.withUnsafeBytes { read($0) }
    }

    struct Scanner {
        let bytes: UnsafeRawBufferPointer
        var position = 0

        init(bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

        var atEnd: Bool { position == bytes.count }

        mutating func heartbeat() -> Heartbeat? {
            var protocolVersion: Int?, agentId: String?, platform: String?, freeMemoryMB: UInt64?, address: String?
            var activeModel: String??, activeModelParamSize: Double??, modelSwapInProgress: Bool?, currentLoad: Int?
            var installedModels: [Heartbeat.InstalledModel]?, seeding: SeedingPolicy??
            let complete = object { scanner, key in
                switch key {
                case "protocolVersion": return scanner.once(&protocolVersion) { $0.integer() }
                case "agentId": return scanner.once(&agentId) { $0.string() }
                case "platform": return scanner.once(&platform) { $0.string() }
                case "freeMemoryMB": return scanner.once(&freeMemoryMB) { $0.unsigned() }
                case "address": return scanner.once(&address) { $0.string() }
                case "activeModel": return scanner.once(&activeModel) { $0.nullable { $0.string() } }
                case "activeModelParamSize": return scanner.once(&activeModelParamSize) { $0.nullable { $0.double() } }
                case "modelSwapInProgress": return scanner.once(&modelSwapInProgress) { $0.boolean() }
                case "currentLoad": return scanner.once(&currentLoad) { $0.integer() }
                case "installedModels": return scanner.once(&installedModels) { $0.array { $0.installedModel() } }
                case "seeding": return scanner.once(&seeding) { $0.nullable { $0.seedingPolicy() } }
                default: return scanner.skipValue(depth: 0)
                }
            }
            guard complete, let protocolVersion, let agentId, let platform, let freeMemoryMB, let address,
                  let modelSwapInProgress, let currentLoad, let installedModels else { return nil }
            var heartbeat = Heartbeat(agentId: agentId, platform: platform, freeMemoryMB: freeMemoryMB, address: address,
                                      activeModel: activeModel ?? nil, activeModelParamSize: activeModelParamSize ?? nil,
                                      modelSwapInProgress: modelSwapInProgress, currentLoad: currentLoad,
                                      installedModels: installedModels, seeding: seeding ?? nil)
            heartbeat.protocolVersion = protocolVersion
            return heartbeat
        }

        mutating func installedModel() -> Heartbeat.InstalledModel? {
            var name: String?, sha256: String?, sizeBytes: UInt64?
            let complete = object { scanner, key in
                switch key {
                case "name": return scanner.once(&name) { $0.string() }
                case "sha256": return scanner.once(&sha256) { $0.string() }
                case "sizeBytes": return scanner.once(&sizeBytes) { $0.unsigned() }
                default: return scanner.skipValue(depth: 0)
                }
            }
            guard complete, let name, let sha256, let sizeBytes else { return nil }
            return Heartbeat.InstalledModel(name: name, sha256: sha256, sizeBytes: sizeBytes)
        }

        mutating func seedingPolicy() -> SeedingPolicy? {
            var maximumUploads: Int?, bytesPerSecond: UInt64??
            let complete = object { scanner, key in
                switch key {
                case "maximumUploads": return scanner.once(&maximumUploads) { $0.integer() }
                case "bytesPerSecond": return scanner.once(&bytesPerSecond) { $0.nullable { $0.unsigned() } }
                default: return scanner.skipValue(depth: 0)
                }
            }
            guard complete, let maximumUploads else { return nil }
            return SeedingPolicy(maximumUploads: maximumUploads, bytesPerSecond: bytesPerSecond ?? nil)
        }

        /// Reads a field's value into `slot`; false when it is there already or does not read.
        mutating func once<T>(_ slot: inout T?, _ read: (inout Scanner) -> T?) -> Bool {
            guard slot == nil, let value = read(&self) else { return false }
            slot = value
            return true
        }

        /// `{ "key": value, ... }`, each value read by `field`; false when anything does not read.
        mutating func object(_ field: (inout Scanner, String) -> Bool) -> Bool {
            guard take(UInt8(ascii: "{")) else { return false }
            if take(UInt8(ascii: "}")) { return true }
            repeat {
                skipWhitespace()
                guard let key = string(), take(UInt8(ascii: ":")) else { return false }
                skipWhitespace()
                guard field(&self, key) else { return false }
            } while take(UInt8(ascii: ","))
            return take(UInt8(ascii: "}"))
        }

        mutating func array<T>(_ element: (inout Scanner) -> T?) -> [T]? {
            guard take(UInt8(ascii: "[")) else { return nil }
            var elements: [T] = []
            if take(UInt8(ascii: "]")) { return elements }
            repeat {
                skipWhitespace()
                guard let value = element(&self) else { return nil }
                elements.append(value)
            } while take(UInt8(ascii: ","))
            return take(UInt8(ascii: "]")) ? elements : nil
        }

        /// `null` (an absent value, `.some(nil)`) or what `read` reads.
        mutating func nullable<T>(_ read: (inout Scanner) -> T?) -> T?? {
            if literal("null") { return .some(nil) }
            return read(&self).map { .some($0) }
        }

        /// A string: valid UTF-8 without control characters, with JSON's escapes.
        mutating func string() -> String? {
            guard position < bytes.count, bytes[position] == UInt8(ascii: "\"") else { return nil }
            let start = position + 1
            var end = start, ascii = true
            while end < bytes.count {
                let byte = bytes[end]
                if byte == UInt8(ascii: "\"") { break }
                if byte == UInt8(ascii: "\\") {
                    position = start
                    return escapedString()
                }
                if byte < 0x20 { return nil }
                ascii = ascii && byte < 0x80
                end += 1
            }
            guard end < bytes.count else { return nil }
            position = end + 1
            let text = UnsafeRawBufferPointer(rebasing: bytes[start..<end])
            // ASCII is valid UTF-8 as it stands; validating costs more than the rest of the read.
            return ascii ? String(decoding: text, as: UTF8.self) : String(validating: text, as: UTF8.self)
        }

        /// The rest of a string that holds escapes (`\/` in every URL from Foundation's encoder).
        mutating func escapedString() -> String? {
            var utf8: [UInt8] = []
            while position < bytes.count {
                let byte = bytes[position]
                position += 1
                switch byte {
                case UInt8(ascii: "\""): return String(validating: utf8, as: UTF8.self)
                case UInt8(ascii: "\\"):
                    guard position < bytes.count else { return nil }
                    let escape = bytes[position]
                    position += 1
                    switch escape {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): utf8.append(escape)
                    case UInt8(ascii: "b"): utf8.append(0x08)
                    case UInt8(ascii: "f"): utf8.append(0x0C)
                    case UInt8(ascii: "n"): utf8.append(0x0A)
                    case UInt8(ascii: "r"): utf8.append(0x0D)
                    case UInt8(ascii: "t"): utf8.append(0x09)
                    case UInt8(ascii: "u"):
                        guard let scalar = escapedScalar() else { return nil }
                        utf8.append(contentsOf: String(Character(scalar)).utf8)
                    default: return nil
                    }
                case ..<0x20: return nil
                default: utf8.append(byte)
                }
            }
            return nil
        }

        /// The scalar of `\uXXXX` (after the `u`), or of a surrogate pair `\uD8XX\uDCXX`.
        mutating func escapedScalar() -> Unicode.Scalar? {
            guard let first = hexUnit() else { return nil }
            guard (0xD800...0xDFFF).contains(first) else { return Unicode.Scalar(first) }
            guard first < 0xDC00, take(UInt8(ascii: "\\"), skippingWhitespace: false), take(UInt8(ascii: "u"), skippingWhitespace: false),
                  let second = hexUnit(), (0xDC00...0xDFFF).contains(second) else { return nil }
            return Unicode.Scalar(0x10000 + ((UInt32(first) - 0xD800) << 10) + (UInt32(second) - 0xDC00))
        }

        mutating func hexUnit() -> UInt16? {
            guard bytes.count - position >= 4 else { return nil }
            var value: UInt16 = 0
            for _ in 0..<4 {
                guard let digit = Character(Unicode.Scalar(bytes[position])).hexDigitValue else { return nil }
                value = value << 4 | UInt16(digit)
                position += 1
            }
            return value
        }

        /// Digits as JSON writes them: no sign, no leading zero, no fraction or exponent.
        mutating func unsigned() -> UInt64? {
            let start = position
            while position < bytes.count, (0x30...0x39).contains(bytes[position]) { position += 1 }
            let count = position - start
            guard count > 0, count <= 20, count == 1 || bytes[start] != 0x30, !continuesNumber() else { return nil }
            var value: UInt64 = 0
            for index in start..<position {
                let (shifted, overflow) = value.multipliedReportingOverflow(by: 10)
                let (sum, carry) = shifted.addingReportingOverflow(UInt64(bytes[index] - 0x30))
                guard !overflow, !carry else { return nil }
                value = sum
            }
            return value
        }

        mutating func integer() -> Int? {
            let negative = take(UInt8(ascii: "-"), skippingWhitespace: false)
            guard let magnitude = unsigned() else { return nil }
            if negative {
                guard magnitude > 0, magnitude <= UInt64(Int.max) + 1 else { return nil }
                return magnitude == UInt64(Int.max) + 1 ? Int.min : -Int(magnitude)
            }
            return magnitude <= UInt64(Int.max) ? Int(magnitude) : nil
        }

        /// A JSON number of at most 24 characters (longer ones are left to Foundation, whose
        /// rounding of many digits this reader does not promise to match), and with an exponent
        /// only when the value is a normal one (Foundation refuses `1e-500` and `0e5`).
        mutating func double() -> Double? {
            let start = position
            _ = take(UInt8(ascii: "-"), skippingWhitespace: false)
            let integerStart = position
            while position < bytes.count, (0x30...0x39).contains(bytes[position]) { position += 1 }
            guard position > integerStart, position - integerStart == 1 || bytes[integerStart] != 0x30 else { return nil }
            if take(UInt8(ascii: "."), skippingWhitespace: false) {
                let fraction = position
                while position < bytes.count, (0x30...0x39).contains(bytes[position]) { position += 1 }
                guard position > fraction else { return nil }
            }
            let exponentStart = position
            if position < bytes.count, bytes[position] | 0x20 == UInt8(ascii: "e") {
                position += 1
                if position < bytes.count, bytes[position] == UInt8(ascii: "+") || bytes[position] == UInt8(ascii: "-") { position += 1 }
                let exponent = position
                while position < bytes.count, (0x30...0x39).contains(bytes[position]) { position += 1 }
                guard position > exponent else { return nil }
            }
            guard position - start <= 24, !continuesNumber() else { return nil }
            guard let value = Double(String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<position]), as: UTF8.self)),
                  value.isFinite, position == exponentStart || value.isNormal else { return nil }
            return value
        }

        /// Whether the number just read runs on in a form the readers above do not take.
        func continuesNumber() -> Bool {
            guard position < bytes.count else { return false }
            let byte = bytes[position]
            return byte == UInt8(ascii: ".") || byte | 0x20 == UInt8(ascii: "e") || (0x30...0x39).contains(byte)
        }

        mutating func boolean() -> Bool? {
            if literal("true") { return true }
            if literal("false") { return false }
            return nil
        }

        /// Any JSON value of a field this reader does not know, nested at most `maximumDepth`.
        mutating func skipValue(depth: Int) -> Bool {
            guard depth < HeartbeatReader.maximumDepth, position < bytes.count else { return false }
            switch bytes[position] {
            case UInt8(ascii: "{"): return object { scanner, _ in scanner.skipValue(depth: depth + 1) }
            case UInt8(ascii: "["): return array { $0.skipValue(depth: depth + 1) ? true : nil } != nil
            case UInt8(ascii: "\""): return string() != nil
            case UInt8(ascii: "t"), UInt8(ascii: "f"): return boolean() != nil
            case UInt8(ascii: "n"): return literal("null")
            default: return double() != nil
            }
        }

        mutating func literal(_ word: StaticString) -> Bool {
            let count = word.utf8CodeUnitCount
            guard bytes.count - position >= count,
                  word.withUTF8Buffer({ $0.elementsEqual(bytes[position..<position + count]) }) else { return false }
            position += count
            return !continuesWord()
        }

        func continuesWord() -> Bool {
            guard position < bytes.count else { return false }
            let byte = bytes[position] | 0x20
            return (0x61...0x7A).contains(byte) || (0x30...0x39).contains(byte)
        }

        /// Skips whitespace, then takes `byte` if it is next (and the whitespace after it).
        mutating func take(_ byte: UInt8, skippingWhitespace: Bool = true) -> Bool {
            if skippingWhitespace { skipWhitespace() }
            guard position < bytes.count, bytes[position] == byte else { return false }
            position += 1
            if skippingWhitespace { skipWhitespace() }
            return true
        }

        mutating func skipWhitespace() {
            while position < bytes.count {
                switch bytes[position] {
                case 0x20, 0x09, 0x0A, 0x0D: position += 1
                default: return
                }
            }
        }
    }
}
