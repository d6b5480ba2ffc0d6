import Foundation
import Hummingbird
import ModelRuntime
import ModelStore
import ModelTransfer

/// A failed request: its HTTP status and a message, sent as `{"error": message}` (Ollama's
/// shape, which EdgeCoder clients read too).
public struct AgentError: Error, Sendable {
    public let status: HTTPResponse.Status
    public let message: String

    public init(_ status: HTTPResponse.Status, _ message: String) {
        self.status = status
        self.message = message
    }

    public static func badRequest(_ message: String) -> AgentError { AgentError(.badRequest, message) }
    public static func notFound(_ message: String) -> AgentError { AgentError(.notFound, message) }

    init(_ error: StoreError) {
        let status: HTTPResponse.Status = switch error.code {
        case .notFound: .notFound
        case .inUse, .alreadyExists: .conflict
        case .invalidName, .invalidInput: .badRequest
        case .diskFull: .insufficientStorage507
        default: .internalServerError
        }
        self.init(status, error.message)
    }

    init(_ error: TransferError) {
        if let store = error.storeError { self.init(store); return }
        let status: HTTPResponse.Status = switch error.code {
        case .invalidSource: .badRequest
        case .notFound: .notFound
        case .conflict: .conflict
        case .diskFull: .insufficientStorage507
        case .rejected, .unreachable, .unsupportedServer, .checksumMismatch: .badGateway
        default: .internalServerError
        }
        self.init(status, error.message)
    }

    init(_ error: RuntimeError) {
        let status: HTTPResponse.Status = switch error.code {
        case .insufficientMemory: .insufficientStorage507
        case .superseded: .conflict
        case .promptTooLong: .badRequest
        default: .internalServerError
        }
        self.init(status, error.message)
    }

    public var response: Response { JSON.response(["error": message], status: status) }
}

extension HTTPResponse.Status {
    static let insufficientStorage507 = HTTPResponse.Status(code: 507, reasonPhrase: "Insufficient Storage")
}

/// JSON in and out, with errors that name the field at fault.
public enum JSON {
    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.sortedKeys]
        return encoder
    }()

    public static func response(_ value: some Encodable, status: HTTPResponse.Status = .ok) -> Response {
        let data = (try? encoder.encode(value)) ?? Data("{}".utf8)
        return Response(status: status, headers: [.contentType: "application/json; charset=utf-8"],
                        body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }

    /// One line of an NDJSON stream.
    static func line(_ value: some Encodable) -> ByteBuffer {
        var data = (try? encoder.encode(value)) ?? Data("{}".utf8)
        data.append(0x0A)
        return ByteBuffer(bytes: data)
    }

    public static func decode<T: Decodable>(_ type: T.Type, from request: Request, context: some RequestContext,
                                            decoder: JSONDecoder = JSONDecoder()) async throws -> T {
        var request = request
        let body = try await request.collectBody(upTo: context.maxUploadSize)
        guard body.readableBytes > 0 else { throw AgentError.badRequest("the request needs a JSON body") }
        do {
            return try decoder.decode(T.self, from: Data(buffer: body))
        } catch DecodingError.keyNotFound(let key, _) {
            throw AgentError.badRequest("missing field '\(key.stringValue)'")
        } catch DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context) {
            throw AgentError.badRequest("field '\(context.codingPath.map(\.stringValue).joined(separator: "."))' has the wrong type: \(context.debugDescription)")
        } catch DecodingError.dataCorrupted(let context) where !context.codingPath.isEmpty {
            throw AgentError.badRequest("field '\(context.codingPath.map(\.stringValue).joined(separator: "."))' is invalid: \(context.debugDescription)")
        } catch {
            throw AgentError.badRequest("the body is not valid JSON")
        }
    }
}

/// Turns thrown errors into `{"error"}` responses, so no request ever gets an HTML page or
/// an empty 500.
public struct ErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    public init() {}

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do { return try await next(request, context) } catch let error as AgentError {
            return error.response
        } catch let error as StoreError {
            return AgentError(error).response
        } catch let error as TransferError {
            return AgentError(error).response
        } catch let error as RuntimeError {
            return AgentError(error).response
        } catch let error as HTTPError {
            return AgentError(error.status, error.body ?? "\(error.status)").response
        } catch {
            return AgentError(.internalServerError, "\(error)").response
        }
    }
}

/// With a token configured, every request that changes something needs `Authorization: Bearer TOKEN`.
struct TokenMiddleware<Context: RequestContext>: RouterMiddleware {
    let token: String

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let mutating = request.method != .get && request.method != .head && request.method != .options
        if mutating && request.headers[.authorization] != "Bearer \(token)" {
            return AgentError(.unauthorized, "this agent needs 'Authorization: Bearer <token>' for changes").response
        }
        return try await next(request, context)
    }
}
