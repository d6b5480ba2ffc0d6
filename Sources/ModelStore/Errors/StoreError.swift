/// Why a store operation failed, with a message that says what to do next.
public struct StoreError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Stable kinds of failure; the CLI maps them to exit codes.
    public enum Code: String, Sendable, Codable {
        case invalidName, invalidInput, notGGUF, notFound, alreadyExists, inUse
        case diskFull, unwritable, sourceChanged, corrupt, database, io
    }

    /// The kind of failure.
    public let code: Code
    /// A sentence for people: what went wrong and what to do about it.
    public let message: String

    /// Makes an error.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}
