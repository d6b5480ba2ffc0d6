import Foundation
import MeshProtocol

/// Serves blobs over a radio link: answers have-map requests with slices and piece requests
/// with data messages, one request at a time at the link's pace, and drops what a stream
/// asked for before it cancelled. Only pieces the blob's map says are verified are ever sent.
public final class RadioSeeder: Sendable {
    /// A blob this device can send: the file, and which pieces of it are verified.
    public struct Blob: Sendable {
        public var path: String
        public var map: HaveMap

        public init(path: String, map: HaveMap) {
            self.path = path
            self.map = map
        }
    }

    let link: any ChunkLink
    let blobs: @Sendable (_ sha256: String) -> Blob?
    private let cancelled = Cancellations()

    /// Serves the blobs `blobs` finds (by lowercase hex SHA-256) over `link`.
    public init(link: any ChunkLink, blobs: @escaping @Sendable (_ sha256: String) -> Blob?) {
        self.link = link
        self.blobs = blobs
    }

    /// What one request asks to be sent.
    fileprivate struct Answer: Sendable {
        let stream: UInt16
        /// The stream's cancellations when the request came: a later one drops it.
        let epoch: Int
        let piece: UInt32
        let offset: UInt32
        let path: String
        let start: UInt64
        let length: Int
    }

    /// Answers until the link closes; returns the values that were not chunk messages.
    @discardableResult
    public func run() async -> Int {
        let (answers, queue) = AsyncStream<Answer>.makeStream()
        async let sent: Void = send(answers)
        var malformed = 0
        for await value in link.incoming {
            guard let message = try? ChunkMessage(decoding: value) else {
                malformed += 1
                continue
            }
            switch message {
            case .haveMapRequest(let stream, let sha256):
                guard let blob = blobs(sha256.lowercaseHex) else {
                    try? await reply(.refused(stream: stream, piece: 0, reason: .notHeld))
                    continue
                }
                for slice in ChunkMessage.slices(stream: stream, sha256: sha256, map: blob.map) { try? await reply(slice) }
            case .pieceRequest(let stream, let sha256, let piece, let offset, let length):
                guard let blob = blobs(sha256.lowercaseHex) else {
                    try? await reply(.refused(stream: stream, piece: piece, reason: .notHeld))
                    continue
                }
                let pieceStart = UInt64(piece) * blob.map.pieceSize
                let pieceEnd = min(blob.map.size, pieceStart + blob.map.pieceSize)
                guard pieceStart < blob.map.size, UInt64(offset) + UInt64(length) <= pieceEnd - pieceStart else {
                    try? await reply(.refused(stream: stream, piece: piece, reason: .notHeld))
                    continue
                }
                guard blob.map.complete || blob.map.have.contains(Int(piece)) else {
                    try? await reply(.refused(stream: stream, piece: piece, reason: .notVerified))
                    continue
                }
                queue.yield(Answer(stream: stream, epoch: cancelled.epoch(of: stream), piece: piece, offset: offset, path: blob.path,
                                   start: pieceStart + UInt64(offset), length: Int(length)))
            case .cancel(let stream, _):
                cancelled.insert(stream)
            case .haveMapSlice, .pieceData, .refused:
                continue
            }
        }
        queue.finish()
        await sent
        return malformed
    }

    /// Sends the answers in turn, a block of the file at a time.
    private func send(_ answers: AsyncStream<Answer>) async {
        for await answer in answers {
            guard let file = FileHandle(forReadingAtPath: answer.path) else { continue }
            defer { try? file.close() }
            var sent = 0
            while sent < answer.length, !cancelled.drops(answer) {
                let count = min(answer.length - sent, 64 << 10)
                guard (try? file.seek(toOffset: answer.start + UInt64(sent))) != nil,
                      let block = try? file.read(upToCount: count), block.count == count else { break }
                let messages = ChunkMessage.data(stream: answer.stream, piece: answer.piece, offset: answer.offset + UInt32(sent),
                                                 bytes: [UInt8](block))
                for message in messages where !cancelled.drops(answer) { try? await reply(message) }
                sent += count
            }
        }
    }

    private func reply(_ message: ChunkMessage) async throws {
        try await link.send(message.encoded())
    }
}

/// How often each stream was cancelled: a cancel drops what the stream asked for before it
/// (a requester cancels before asking again for what a lossy link lost, so answers still
/// queued are not sent twice), not what it asks for after.
private final class Cancellations: @unchecked Sendable {
    // Guarded by `lock`.
    private var epochs: [UInt16: Int] = [:]
    private let lock = NSLock()

    func insert(_ stream: UInt16) { lock.withLock { epochs[stream, default: 0] += 1 } }
    func epoch(of stream: UInt16) -> Int { lock.withLock { epochs[stream, default: 0] } }
    func drops(_ answer: RadioSeeder.Answer) -> Bool { epoch(of: answer.stream) != answer.epoch }
}
