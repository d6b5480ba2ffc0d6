import DepotHTTP
import Foundation
import Hummingbird
import MeshProtocol
import ModelStore
import ModelTransfer
import NIOCore
#if canImport(Glibc)
import Glibc
#endif

extension Agent {
    /// Peer blob serving: `GET|HEAD /p2p/blobs/sha256/<hex>` with `Range`, for blobs of ready
    /// models whose files are as the store recorded them (never a partial download, never a
    /// model marked corrupt). The ETag is the SHA-256, so a peer (or a BitTorrent client using
    /// this address as a web seed) resumes against the bytes themselves. Peers on this machine
    /// or a private network are served as they are; others need a ticket from this agent's
    /// coordinator naming this agent and the blob. A ticket is a bearer token: it does not
    /// prove who presents it, only that the coordinator let someone fetch these bytes.
    func addPeerRoutes(to router: Router<AgentRequestContext>) {
        router.get("/p2p/blobs/sha256/:digest") { request, context in try self.serveBlob(request, context, body: true) }
        router.head("/p2p/blobs/sha256/:digest") { request, context in try self.serveBlob(request, context, body: false) }
        router.get("/p2p/blobs/sha256/:digest/layer") { request, context in try self.pieceLayer(request, context) }
        router.get("/p2p/blobs/sha256/:digest/pieces") { request, context in try self.haveMap(request, context) }
        // The same bytes under a file name: BitTorrent clients treat a web seed ending in '/'
        // as a folder and append the torrent's file name (libtorrent does for v2 torrents).
        router.get("/p2p/blobs/sha256/:digest/file/:name") { request, context in try self.serveBlob(request, context, body: true) }
        router.head("/p2p/blobs/sha256/:digest/file/:name") { request, context in try self.serveBlob(request, context, body: false) }
    }

    /// What the request may fetch: the blob (stored, or still downloading: then only its
    /// verified pieces are served), the peer's upload slots and the ticket it came with.
    struct SeedingGrant {
        let path: String
        let size: UInt64
        let downloading: Bool
        let digest: String
        let slots: UploadSlots
        let ticket: (ticket: SeederTicket, token: String)?
    }

    private func seededBlob(_ request: Request, _ context: AgentRequestContext) throws -> SeedingGrant {
        guard let slots = uploads else {
            throw AgentError(.forbidden, "this agent does not seed: start it with --seed to serve its models to peers")
        }
        let digest = context.parameters.get("digest") ?? ""
        guard digest.utf8.count == 64, digest.utf8.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }) else {
            throw AgentError.badRequest("a blob is named by its SHA-256: 64 lowercase hex digits")
        }
        var ticket: (SeederTicket, String)?
        if let token = Self.header(PeerSource.ticketHeader, of: request) {
            guard let key = coordinatorKey.current else {
                slots.refuse("badTicket")
                throw AgentError(.forbidden, "this agent has no coordinator whose tickets it could check")
            }
            if let problem = SeederTicket.problem(with: token, coordinatorKey: key, seeder: identity.id, sha256: digest) {
                slots.refuse("badTicket")
                throw AgentError(.forbidden, problem)
            }
            if case .success(let verified) = SeederTicket.verified(token, coordinatorKey: key) { ticket = (verified, token) }
        } else if !SeedPolicy.isLocalNetwork(context.remoteAddress) {
            slots.refuse("notLocal")
            throw AgentError(.forbidden, "peers beyond this agent's machine and private network need a ticket from its coordinator (GET /mesh/seeders) in \(PeerSource.ticketHeader)")
        }
        if let path = try seedableBlobPath(digest) {
            let size = try (FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.uint64Value ?? 0
            return SeedingGrant(path: path, size: size, downloading: false, digest: digest, slots: slots, ticket: ticket)
        }
        if let partial = board?.readablePartial(digest, range: 0..<0) {
            return SeedingGrant(path: partial.path, size: partial.size, downloading: true, digest: digest, slots: slots, ticket: ticket)
        }
        slots.refuse("notHeld")
        throw AgentError.notFound("this agent holds no verified blob \(digest)")
    }

    /// Which pieces of the blob this agent has: all of a stored blob (in pieces of
    /// `?pieceSize=`, by default BitTorrent's), the verified ones of a download.
    private func haveMap(_ request: Request, _ context: AgentRequestContext) throws -> Response {
        let grant = try seededBlob(request, context)
        let map: HaveMap
        if grant.downloading {
            guard let current = board?.haveMap(of: grant.digest) else { throw AgentError(.serviceUnavailable, "the download of \(grant.digest) just ended; ask again") }
            map = current
        } else {
            let asked = request.uri.queryParameters.get("pieceSize").map { UInt64($0) ?? 0 }
            if let asked, !(1...(64 << 20)).contains(asked) { throw AgentError.badRequest("'pieceSize' must be 1 to 67108864 bytes") }
            map = .complete(sha256: grant.digest, size: grant.size, pieceSize: asked ?? MerklePieces.defaultPieceSize(fileSize: grant.size))
        }
        return JSON.response(map)
    }

    static func header(_ name: String, of request: Request) -> String? {
        request.headers.first(where: { $0.name.canonicalName == name.lowercased() })?.value
    }

    /// The blob's piece layer (BEP 52) for `?pieceSize=`: 32 bytes a piece, which the asker
    /// checks against the pieces root its signed catalog holds.
    private func pieceLayer(_ request: Request, _ context: AgentRequestContext) throws -> Response {
        let grant = try seededBlob(request, context)
        let digest = grant.digest
        let size = request.uri.queryParameters.get("pieceSize").flatMap { UInt64($0) }
        let key = "\(digest):\(size.map(String.init) ?? "default")"
        let layer: Data
        if grant.downloading {
            guard let known = board?.layer(of: digest, pieceSize: size) else {
                throw AgentError.notFound("this agent's download of \(digest) has no piece layer for pieces of \(size.map(String.init) ?? "the default size")")
            }
            layer = known
        } else if let cached = pieceLayers.current[key] {
            layer = cached
        } else {
            do {
                layer = try MerklePieces(path: grant.path, pieceSize: size).layerBytes
            } catch let error as TransferError {
                throw AgentError.badRequest(error.message)
            }
            pieceLayers.withLock { layers in
                if layers.count >= 16 { layers.removeAll() }
                layers[key] = layer
            }
        }
        return Response(status: .ok, headers: [.contentType: "application/octet-stream"], body: ResponseBody(byteBuffer: ByteBuffer(bytes: layer)))
    }

    private func serveBlob(_ request: Request, _ context: AgentRequestContext, body: Bool) throws -> Response {
        let grant = try seededBlob(request, context)
        let (path, size, digest, slots, ticket) = (grant.path, grant.size, grant.digest, grant.slots, grant.ticket)
        let etag = "\"\(digest)\""
        var headers: HTTPFields = [.eTag: etag, .acceptRanges: "bytes", .contentType: "application/octet-stream"]
        var range: Range<UInt64> = 0..<size
        var status = HTTPResponse.Status.ok
        // An If-Range naming other bytes asks for the whole file; this one is content-addressed.
        if let header = request.headers[.range], request.headers[.ifRange].map({ $0 == etag }) ?? true {
            switch ByteRange.parse(header, size: size) {
            case .whole: break
            case .part(let part):
                range = part
                status = .partialContent
                headers[.contentRange] = "bytes \(part.lowerBound)-\(part.upperBound - 1)/\(size)"
            case .unsatisfiable:
                headers[.contentRange] = "bytes */\(size)"
                return Response(status: .rangeNotSatisfiable, headers: headers)
            }
        }
        headers[.contentLength] = String(range.count)
        guard body, !range.isEmpty else { return Response(status: status, headers: headers) }
        if grant.downloading, board?.readablePartial(digest, range: range) == nil {
            // Only verified pieces leave a download; a peer asks for what its have-map lists.
            slots.refuse("notVerified")
            throw AgentError(.rangeNotSatisfiable, "this agent has not verified bytes \(range.lowerBound)-\(range.upperBound - 1) of \(digest) yet: see its /pieces")
        }
        if let ticket {
            do throws(ReceiptBook.Refusal) {
                try receipts.admit(ticket: ticket.ticket, token: ticket.token, receiptHeader: Self.header(SeedReceipt.header, of: request),
                                   length: UInt64(range.count))
            } catch {
                switch error {
                case .badReceipt(let problem):
                    slots.refuse("badReceipt")
                    throw AgentError(.forbidden, problem)
                case .receiptsBehind(let unreceipted):
                    slots.refuse("receiptsBehind")
                    var behind = AgentError(.tooManyRequests, "\(unreceipted) bytes sent under this ticket are not receipted yet; send a receipt in \(SeedReceipt.header)").response
                    behind.headers[.retryAfter] = "1"
                    return behind
                case .tooLarge:
                    slots.refuse("tooLarge")
                    throw AgentError.badRequest("a peer with a ticket asks for at most \(ReceiptBook.maximumRequest >> 20) MiB at once")
                }
            }
        }
        guard slots.acquire() else {
            slots.refuse("busy")
            var busy = AgentError(.serviceUnavailable, "this agent already serves \(slots.policy.maximumUploads) peers; try again shortly").response
            busy.headers[.retryAfter] = "1"
            return busy
        }
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else {
            slots.release()
            throw AgentError(.internalServerError, "cannot open blob \(digest): \(String(cString: strerror(errno)))")
        }
        let sent = range
        return Response(status: status, headers: headers, body: ResponseBody(contentLength: sent.count) { writer in
            defer {
                close(descriptor)
                slots.release()
            }
            var position = sent.lowerBound
            var buffer = ByteBufferAllocator().buffer(capacity: 64 << 10)
            while position < sent.upperBound {
                let count = Int(min(64 << 10, sent.upperBound - position))
                buffer.clear()
                let read = buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: count) { bytes in
                    pread(descriptor, bytes.baseAddress, count, off_t(position))
                }
                guard read > 0 else { throw AgentError(.internalServerError, "blob \(digest) ended early") }
                try await slots.send(read)
                try await writer.write(buffer)
                if let ticket { self.receipts.sent(read, token: ticket.token) }
                position += UInt64(read)
            }
            try await writer.finish(nil)
        })
    }

    /// The blob's path if a ready model uses it and its file is as recorded.
    func seedableBlobPath(_ digest: String) throws -> String? {
        let used = try store.listModels().contains { entry in
            entry.status == .ready && entry.files.contains { $0.sha256 == digest }
        }
        return used ? try store.storedBlobPath(sha256: digest) : nil
    }
}

/// One `Range: bytes=…` header against a file of `size` bytes (RFC 9110). Several ranges are
/// answered with the whole file, which the RFC allows.
enum ByteRange: Equatable {
    case whole
    case part(Range<UInt64>)
    case unsatisfiable

    static func parse(_ header: String, size: UInt64) -> ByteRange {
        guard header.hasPrefix("bytes="), !header.contains(",") else { return .whole }
        let spec = header.dropFirst(6).trimmingCharacters(in: .whitespaces)
        let sides = spec.split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        guard sides.count == 2 else { return .whole }
        if sides[0].isEmpty {  // the last N bytes
            guard let suffix = UInt64(sides[1]), suffix > 0, size > 0 else { return .unsatisfiable }
            return .part(size - min(suffix, size)..<size)
        }
        guard let first = UInt64(sides[0]) else { return .whole }
        guard first < size else { return .unsatisfiable }
        if sides[1].isEmpty { return .part(first..<size) }
        guard let last = UInt64(sides[1]), last >= first else { return .whole }
        return .part(first..<min(last, size - 1) + 1)
    }
}
