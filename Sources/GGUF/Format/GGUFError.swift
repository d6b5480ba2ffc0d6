/// Why a GGUF file could not be read or written, with the byte offset where it went wrong.
public struct GGUFError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What kind of problem this is; stable for callers and tests.
    public enum Code: String, Sendable {
        case notGGUF, unsupportedVersion, truncated, lengthExceedsFile, invalidValueType
        case invalidValue, nestingTooDeep, duplicateKey, invalidAlignment, tooManyDimensions
        case invalidTensorType, invalidTensorShape, duplicateTensor, tensorOutOfBounds, io
        /// More metadata entries or tensors than any real model has (a sparse file can claim a
        /// size that makes any count look possible).
        case tooManyEntries
        /// A key, name or string value that is not UTF-8.
        case invalidUTF8
    }

    /// The kind of problem.
    public let code: Code
    /// Byte offset in the file where the problem was found, when there is one.
    public let offset: UInt64?
    /// A sentence for people.
    public let message: String

    /// Makes an error; `message` should say what was wrong, not where (the offset is added).
    public init(_ code: Code, offset: UInt64?, _ message: String) {
        self.code = code
        self.offset = offset
        self.message = message
    }

    public var description: String {
        guard let offset else { return message }
        return "\(message) (at byte offset \(offset))"
    }
}
