import DepotHTTP
import Foundation
import Hummingbird
import ModelRuntime
import ModelStore
import ModelTransfer

/// The agent's failed requests: the shared `{"error"}` shape, with its own errors' statuses.
public typealias AgentError = APIError

extension APIError {
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
        case .promptTooLong, .noChatTemplate, .noEmbeddings, .noInfill: .badRequest
        default: .internalServerError
        }
        self.init(status, error.message)
    }
}

extension HTTPResponse.Status {
    static let insufficientStorage507 = HTTPResponse.Status(code: 507, reasonPhrase: "Insufficient Storage")
}

extension Agent {
    /// The agent's own errors as responses (store, transfer, runtime).
    /// Any error as the agent answers it: its own status, else a 500 with its description.
    static func apiError(_ error: any Error) -> APIError {
        (error as? APIError) ?? translate(error) ?? APIError(.internalServerError, "\(error)")
    }

    static func translate(_ error: any Error) -> APIError? {
        switch error {
        case let error as StoreError: APIError(error)
        case let error as TransferError: APIError(error)
        case let error as RuntimeError: APIError(error)
        default: nil
        }
    }
}
