import ModelStore

/// Why a transfer failed, with a message that says what to do next and never a secret.
public struct TransferError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Stable kinds of failure; the CLI maps them to exit codes.
    public enum Code: String, Sendable, Codable {
        /// The source string is not a URL or `hf://` reference we understand.
        case invalidSource
        /// The server refused (4xx other than 408 and 429); retrying will not help.
        case rejected
        /// Retries ran out on network errors, 5xx answers or stalls.
        case unreachable
        /// The bytes did not match the expected SHA-256.
        case checksumMismatch
        /// The server does not give a size, so the download cannot be checked or resumed.
        case unsupportedServer
        /// Not enough free space for the remaining bytes.
        case diskFull
        /// The transfer was cancelled, or interrupted (then its partial files are kept).
        case cancelled
        /// The job was paused; its partial files are kept.
        case paused
        /// No such job.
        case notFound
        /// The job is in a state that does not allow this.
        case conflict
        /// The store refused the result (its own error's code is in the message).
        case store
        /// Reading or writing the partial file failed.
        case io
    }

    /// The kind of failure.
    public let code: Code
    /// A sentence for people; URLs in it are redacted.
    public let message: String
    /// The store's error, when the store refused.
    public let storeError: StoreError?

    /// Makes an error.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
        storeError = nil
    }

    /// Wraps a store error.
    public init(_ error: StoreError) {
        code = error.code == .diskFull ? .diskFull : .store
        message = error.message
        storeError = error
    }

    public var description: String { message }
}
