import Foundation
import Hummingbird

/// A failed request: its HTTP status and a message, sent as `{"error": message}` (Ollama's
/// shape, which EdgeCoder clients read too).
public struct APIError: Error, Sendable {
    public let status: HTTPResponse.Status
    public let message: String

    public init(_ status: HTTPResponse.Status, _ message: String) {
        self.status = status
        self.message = message
    }

    public static func badRequest(_ message: String) -> APIError { APIError(.badRequest, message) }
    public static func notFound(_ message: String) -> APIError { APIError(.notFound, message) }
    public static func forbidden(_ message: String) -> APIError { APIError(.forbidden, message) }

    public var response: Response { JSON.response(["error": message], status: status) }
}

/// Turns thrown errors into `{"error"}` responses, so no request ever gets an HTML page or
/// an empty 500. `translate` maps a server's own error types; Hummingbird's errors keep their
/// status (a body over the limit is a 413).
public struct ErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    let translate: @Sendable (any Error) -> APIError?

    public init(translate: @escaping @Sendable (any Error) -> APIError? = { _ in nil }) { self.translate = translate }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do { return try await next(request, context) } catch let error as APIError {
            return error.response
        } catch let error as HTTPError {
            return APIError(error.status, error.body ?? "\(error.status)").response
        } catch let error as any HTTPResponseError where error.status == .contentTooLarge {
            return APIError(.contentTooLarge, "the request body is larger than this server takes").response
        } catch {
            if let translated = translate(error) { return translated.response }
            if let error = error as? any HTTPResponseError { return APIError(error.status, "\(error.status)").response }
            return APIError(.internalServerError, "\(error)").response
        }
    }
}
