import Foundation
import Hummingbird

/// JSON in and out, with errors that name the field at fault.
public enum JSON {
    public static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.sortedKeys]
        return encoder
    }()

    public static func response(_ value: some Encodable, status: HTTPResponse.Status = .ok, encoder: JSONEncoder = encoder) -> Response {
        Response(status: status, headers: [.contentType: "application/json; charset=utf-8"],
                 body: ResponseBody(byteBuffer: body(value, encoder: encoder)))
    }

    public static func body(_ value: some Encodable, encoder: JSONEncoder = encoder) -> ByteBuffer {
        ByteBuffer(bytes: (try? encoder.encode(value)) ?? Data("{}".utf8))
    }

    /// One line of an NDJSON stream.
    public static func line(_ value: some Encodable) -> ByteBuffer {
        var data = (try? encoder.encode(value)) ?? Data("{}".utf8)
        data.append(0x0A)
        return ByteBuffer(bytes: data)
    }

    /// The request's JSON body as `T`; a body over `limit` bytes is a 413, bad JSON a 400
    /// naming the field.
    public static func decode<T: Decodable>(_ type: T.Type, from request: Request, context: some RequestContext,
                                            decoder: JSONDecoder = JSONDecoder(), limit: Int? = nil) async throws -> T {
        var request = request
        let body = try await request.collectBody(upTo: limit ?? context.maxUploadSize)
        guard body.readableBytes > 0 else { throw APIError.badRequest("the request needs a JSON body") }
        return try decode(type, from: Data(buffer: body), decoder: decoder)
    }

    public static func decode<T: Decodable>(_ type: T.Type, from data: Data, decoder: JSONDecoder = JSONDecoder()) throws -> T {
        do {
            return try decoder.decode(T.self, from: data)
        } catch DecodingError.keyNotFound(let key, let context) {
            throw APIError.badRequest("missing field '\((context.codingPath + [key]).map(\.stringValue).joined(separator: "."))'")
        } catch DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context) {
            throw APIError.badRequest("field '\(context.codingPath.map(\.stringValue).joined(separator: "."))' has the wrong type: \(context.debugDescription)")
        } catch DecodingError.dataCorrupted(let context) where !context.codingPath.isEmpty {
            throw APIError.badRequest("field '\(context.codingPath.map(\.stringValue).joined(separator: "."))' is invalid: \(context.debugDescription)")
        } catch {
            throw APIError.badRequest("the body is not valid JSON")
        }
    }
}
