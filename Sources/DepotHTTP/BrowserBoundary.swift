import Crypto
import Foundation
import Hummingbird

/// Keeps web pages from driving a server: a request whose `Origin` is not allowed is refused
/// (browsers send it on cross-site requests, including "simple" ones without a preflight), and
/// so is one whose `Host` is a name the server was not told about (a DNS-rebinding page reaches
/// 127.0.0.1 under its own name). IP literals and loopback names are always accepted. Allowed:
/// the server's own pages (an `Origin` naming the host the request was sent to) and the
/// configured origins, which may hold `*` wildcards (`http://localhost:*`,
/// `chrome-extension://*`); those get CORS headers and their preflights are answered.
public struct BrowserBoundaryMiddleware<Context: RequestContext>: RouterMiddleware {
    let allowedOrigins: [String]
    let allowedHosts: Set<String>

    public init(allowedOrigins: [String] = [], allowedHosts: [String] = []) {
        self.allowedOrigins = allowedOrigins.map { $0.lowercased() }
        self.allowedHosts = Set(allowedHosts.map { $0.lowercased() })
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let host = request.head.authority ?? ""
        guard Self.isAcceptable(host: host, allowed: allowedHosts) else {
            return APIError(.forbidden, "this server does not answer to the name '\(host.prefix(100))'").response
        }
        guard let origin = request.headers[.origin] else { return try await next(request, context) }
        let lowered = origin.lowercased()
        if lowered == "http://" + host.lowercased() || lowered == "https://" + host.lowercased() {
            return try await next(request, context)
        }
        guard allowedOrigins.contains(where: { fnmatch($0, lowered, 0) == 0 }) else {
            return APIError(.forbidden, "requests from web pages (Origin '\(origin.prefix(100))') are not accepted here; allow an origin with --origins").response
        }
        var response: Response
        if request.method == .options {
            response = Response(status: .noContent)
            response.headers[.accessControlAllowMethods] = "GET, HEAD, POST, PUT, DELETE, OPTIONS"
            response.headers[.accessControlAllowHeaders] = "Authorization, Content-Type"
            response.headers[.accessControlMaxAge] = "600"
        } else {
            response = try await next(request, context)
        }
        response.headers[.accessControlAllowOrigin] = origin
        response.headers[.vary] = "Origin"
        return response
    }

    /// Loopback names, IP literals and configured names, each with or without a port.
    static func isAcceptable(host authority: String, allowed: Set<String>) -> Bool {
        let name = Self.name(of: authority.lowercased())
        if name.isEmpty || allowed.contains(name) { return !name.isEmpty }
        if name == "localhost" || name.hasSuffix(".localhost") { return true }
        var v4 = in_addr(), v6 = in6_addr()
        return inet_pton(AF_INET, name, &v4) == 1 || inet_pton(AF_INET6, name, &v6) == 1
    }

    /// The host part of `host[:port]` or `[v6]:port`.
    static func name(of authority: String) -> String {
        if authority.hasPrefix("["), let close = authority.firstIndex(of: "]") {
            return String(authority[authority.index(after: authority.startIndex)..<close])
        }
        if authority.filter({ $0 == ":" }).count == 1, let colon = authority.firstIndex(of: ":") {
            return String(authority[..<colon])
        }
        return authority
    }
}

/// Requests that send a body must send JSON (`Content-Type: application/json`): a web page can
/// send a cross-site POST without asking first only as text/plain, a form or multipart.
public struct JSONBodyMiddleware<Context: RequestContext>: RouterMiddleware {
    public init() {}

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let hasBody = request.headers[.transferEncoding] != nil || (request.headers[.contentLength].flatMap(Int.init) ?? 0) > 0
        if hasBody, request.method != .get, request.method != .head {
            let type = request.headers[.contentType]?.split(separator: ";").first?.trimmingCharacters(in: .whitespaces).lowercased()
            guard type == "application/json" else {
                return APIError(.unsupportedMediaType, "send the body as JSON with 'Content-Type: application/json' (got '\((request.headers[.contentType] ?? "none").prefix(100))')").response
            }
        }
        return try await next(request, context)
    }
}

/// With a token configured, requests that `needsToken` picks must carry
/// `Authorization: Bearer TOKEN`; compared in constant time.
public struct BearerTokenMiddleware<Context: RequestContext>: RouterMiddleware {
    let digest: [UInt8]
    let needsToken: @Sendable (Request) -> Bool
    let message: String

    public init(token: String, message: String, needsToken: @escaping @Sendable (Request) -> Bool) {
        digest = ConstantTime.digest(token)
        self.needsToken = needsToken
        self.message = message
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if needsToken(request) {
            let given = request.headers[.authorization].flatMap { $0.hasPrefix("Bearer ") ? String($0.dropFirst(7)) : nil } ?? ""
            guard ConstantTime.equal(ConstantTime.digest(given), digest) else { return APIError(.unauthorized, message).response }
        }
        return try await next(request, context)
    }
}

/// Secrets compared without leaking, through timing, how much of them matched.
public enum ConstantTime {
    /// A fixed-length stand-in for a secret, so lengths do not leak either.
    public static func digest(_ secret: String) -> [UInt8] {
        Array(SHA256.hash(data: Data(secret.utf8)))
    }

    public static func equal(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for index in a.indices { difference |= a[index] ^ b[index] }
        return difference == 0
    }
}
