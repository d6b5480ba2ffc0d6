/// Why a catalog could not be used, with what to do next.
public struct CatalogError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Code: String, Sendable {
        case unreachable, invalid, unsupportedVersion, unverified, noCatalog, badSignature
        /// A signed catalog older (by serial) than the cached one.
        case replayed
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}
