import Foundation
import MeshProtocol
import NIOCore

/// A phone nearby that holds a blob, reached over a radio link (a BLE GATT characteristic):
/// a swarm source beside the HTTP peers. Ranges are asked for a window at a time; what the
/// link loses is asked for again once the link has been quiet for a moment, and a window
/// reaches the download only when all of it has arrived, so the bytes go on in order. The
/// pieces are checked against the manifest like any peer's.
public final class RadioPeer: RangeSource, @unchecked Sendable, Equatable {
    let name: String
    let link: any ChunkLink
    let sha256: Data
    let timing: Timing
    private let inboxes: Inboxes
    // Guarded by `lock`: the seeder's own piece size, learned from its have-map.
    private var seederPieceSize: UInt64?
    private var nextStream: UInt16 = 0
    private let lock = NSLock()

    /// How long to wait on a link that may drop what was sent.
    public struct Timing: Sendable {
        /// For the first answer to a request.
        public var firstAnswer: Duration = .milliseconds(500)
        /// After the last value of an answer, before asking again for what is missing.
        public var quiet: Duration = .milliseconds(100)
        /// Rounds in a row without a byte before the link counts as gone.
        public var silentRounds = 8
        /// Bytes one request asks for.
        public var window = 64 << 10
        /// Requests answered in one round.
        public var windowsInFlight = 32

        public init() {}
    }

    /// A peer for the blob `sha256` (hex) at the other end of `link`; `name` says which phone.
    public init(name: String, link: any ChunkLink, sha256: String, timing: Timing = Timing()) throws(TransferError) {
        guard let digest = Data(hexDigits: sha256), digest.count == 32 else {
            throw TransferError(.invalidSource, "'\(sha256)' is not a SHA-256 (64 hexadecimal digits)")
        }
        self.name = name
        self.link = link
        self.sha256 = digest
        self.timing = timing
        inboxes = Inboxes()
        let inboxes = inboxes, incoming = link.incoming
        // Routes each arriving message to the request it answers; ends with the link.
        Task {
            for await value in incoming {
                guard let message = try? ChunkMessage(decoding: value) else { continue }
                inboxes.deliver(message)
            }
            inboxes.closeAll()
        }
    }

    public static func == (left: RadioPeer, right: RadioPeer) -> Bool { left === right }

    var address: String { "radio://\(name)/sha256/\(sha256.lowercaseHex)" }
    /// Receipts travel over HTTP only; a radio seeder is not credited.
    var account: PeerAccount? { nil }
    /// One request at a time: the link's rate is the limit, not the connections.
    var connectionLimit: Int? { 1 }

    func probe() async throws(FetchFailure) -> RemoteFile {
        let map = try await seederMap()
        guard let url = URL(string: address) else { throw .fatal(TransferError(.invalidSource, "\(name) is not a usable radio peer name")) }
        return RemoteFile(url: url, size: map.size, etag: nil, lastModified: nil, acceptsRanges: true, publishedSHA256: nil)
    }

    /// The seeder's map in pieces of `pieceSize`: a piece counts as held when every seeder
    /// piece it touches is.
    func haveMap(pieceSize: UInt64) async -> HaveMap? {
        guard pieceSize > 0, let map = try? await seederMap() else { return nil }
        if map.complete { return .complete(sha256: map.sha256, size: map.size, pieceSize: pieceSize) }
        let count = HaveMap.pieceCount(size: map.size, pieceSize: pieceSize)
        var have = PieceBitfield(count: count)
        for index in 0..<count {
            let first = UInt64(index) * pieceSize / map.pieceSize
            let last = (min(map.size, UInt64(index + 1) * pieceSize) - 1) / map.pieceSize
            if (first...last).allSatisfy({ map.have.contains(Int($0)) }) { have.insert(index) }
        }
        return HaveMap(sha256: map.sha256, size: map.size, pieceSize: pieceSize, complete: false, have: have,
                       fetching: PieceBitfield(count: count))
    }

    func fetch(_ remote: RemoteFile, range: Range<UInt64>?, validator: String?,
               consume: @escaping @Sendable (UInt64, ByteBuffer) throws -> Bool) async throws(FetchFailure) {
        let range = range ?? 0..<remote.size
        let pieceSize: UInt64
        if let known = lock.withLock({ seederPieceSize }) { pieceSize = known } else { pieceSize = try await seederMap().pieceSize }
        let (stream, inbox) = open()
        defer { inboxes.close(stream) }
        var position = range.lowerBound
        while position < range.upperBound {
            // A batch of windows is in flight at once, so a round's quiet wait is paid once per
            // batch; each window goes on as soon as it and those before it are complete.
            var windows: [(offset: UInt64, assembly: PieceAssembly)] = []
            while position < range.upperBound, windows.count < timing.windowsInFlight {
                let piece = position / pieceSize
                let pieceStart = piece * pieceSize
                let end = min(range.upperBound, pieceStart + pieceSize, position + UInt64(timing.window))
                windows.append((position, PieceAssembly(piece: UInt32(piece), range: Int(position - pieceStart)..<Int(end - pieceStart))))
                position = end
            }
            let finished = try await receive(&windows, stream: stream, inbox: inbox, consume: consume)
            guard finished else {
                try? await link.send(ChunkMessage.cancel(stream: stream, piece: windows.first?.assembly.piece ?? 0).encoded())
                return
            }
        }
    }

    // MARK: The link

    /// Asks for what the windows lack, round after round, handing each on in order once it is
    /// complete; false when `consume` wants no more.
    private func receive(_ windows: inout [(offset: UInt64, assembly: PieceAssembly)], stream: UInt16, inbox: Inbox,
                         consume: (UInt64, ByteBuffer) throws -> Bool) async throws(FetchFailure) -> Bool {
        var silent = 0, round = 0
        while !windows.isEmpty {
            // What the seeder still has queued from the last round would come twice.
            if round > 0 { try await send(.cancel(stream: stream, piece: windows[0].assembly.piece)) }
            round += 1
            for (_, assembly) in windows {
                for missing in assembly.missing {
                    try await send(.pieceRequest(stream: stream, sha256: sha256, piece: assembly.piece,
                                                 offset: UInt32(assembly.start + missing.lowerBound), length: UInt32(missing.count)))
                }
            }
            var wait = timing.firstAnswer, lastArrival: ContinuousClock.Instant?, longestGap = Duration.zero
            while !windows.isEmpty, let message = await inbox.next(within: wait) {
                guard !Task.isCancelled else { throw .fatal(TransferError(.cancelled, "the transfer was cancelled")) }
                if case .refused(_, _, let reason) = message { throw Self.failure(reason, name: name) }
                guard let index = windows.indices.first(where: { windows[$0].assembly.add(message) }) else { continue }
                // A busy device (or a slower link) spaces values out: the quiet that ends a
                // round stretches with the longest gap seen, so nothing on its way is asked twice.
                let now = ContinuousClock.now
                if let lastArrival { longestGap = max(longestGap, now - lastArrival) }
                lastArrival = now
                wait = min(max(timing.quiet, longestGap * 4), timing.firstAnswer * 2)
                guard index == 0 else { continue }
                while let first = windows.first, first.assembly.isComplete {
                    windows.removeFirst()
                    do {
                        guard try consume(first.offset, ByteBuffer(bytes: first.assembly.bytes)) else { return false }
                    } catch let error as TransferError {
                        throw .fatal(error)
                    } catch {
                        throw .transient("\(error)")
                    }
                }
            }
            guard !Task.isCancelled else { throw .fatal(TransferError(.cancelled, "the transfer was cancelled")) }
            silent = lastArrival != nil ? 0 : silent + 1
            if !windows.isEmpty && (silent >= timing.silentRounds || inbox.isClosed) {
                throw .transient("the radio link to \(name) went quiet")
            }
        }
        return true
    }

    /// The seeder's have-map for the blob, in its own pieces.
    private func seederMap() async throws(FetchFailure) -> HaveMap {
        let (stream, inbox) = open()
        defer { inboxes.close(stream) }
        for _ in 0..<timing.silentRounds {
            try await send(.haveMapRequest(stream: stream, sha256: sha256))
            var slices: [ChunkMessage.HaveMapSlice] = []
            var wait = timing.firstAnswer
            while let message = await inbox.next(within: wait) {
                if case .refused(_, _, let reason) = message { throw Self.failure(reason, name: name) }
                guard case .haveMapSlice(_, let slice) = message, slice.sha256 == sha256 else { continue }
                slices.append(slice)
                wait = timing.quiet
                if let map = ChunkMessage.haveMap(from: slices) {
                    lock.withLock { seederPieceSize = map.pieceSize }
                    return map
                }
            }
            if inbox.isClosed { break }
        }
        throw .transient("\(name) did not send its have-map over the radio link")
    }

    private func send(_ message: ChunkMessage) async throws(FetchFailure) {
        do {
            try await link.send(message.encoded())
        } catch {
            throw .transient("the radio link to \(name) failed: \(error)")
        }
    }

    private func open() -> (UInt16, Inbox) {
        let stream = lock.withLock {
            nextStream &+= 1
            return nextStream
        }
        return (stream, inboxes.open(stream))
    }

    private static func failure(_ reason: ChunkMessage.Refusal, name: String) -> FetchFailure {
        switch reason {
        case .busy: .busy("\(name) is serving others over its radio link")
        case .notVerified: .transient("\(name) has not verified that piece yet")
        case .notHeld: .fatal(TransferError(.rejected, "\(name) does not hold the blob"))
        }
    }
}

/// The messages waiting for each open request of a radio peer.
private final class Inboxes: @unchecked Sendable {
    // Guarded by `lock`.
    private var open: [UInt16: Inbox] = [:]
    private var closed = false
    private let lock = NSLock()

    func open(_ stream: UInt16) -> Inbox {
        let inbox = Inbox()
        let closed = lock.withLock {
            open[stream] = inbox
            return self.closed
        }
        if closed { inbox.close() }
        return inbox
    }

    func close(_ stream: UInt16) { lock.withLock { open.removeValue(forKey: stream) }?.close() }

    /// A message for a request no longer open (a late answer) is dropped.
    func deliver(_ message: ChunkMessage) { lock.withLock { open[message.stream] }?.put(message) }

    func closeAll() {
        let all = lock.withLock {
            closed = true
            return Array(open.values)
        }
        for inbox in all { inbox.close() }
    }
}

/// Messages for one request, taken one at a time with a deadline.
private final class Inbox: @unchecked Sendable {
    // Guarded by `lock`.
    private var queue: [ChunkMessage] = []
    private var waiter: (id: UInt64, continuation: CheckedContinuation<ChunkMessage?, Never>)?
    private var waits: UInt64 = 0
    private var closed = false
    private let lock = NSLock()

    var isClosed: Bool { lock.withLock { closed } }

    func put(_ message: ChunkMessage) {
        let waiting = lock.withLock { () -> CheckedContinuation<ChunkMessage?, Never>? in
            guard let waiter else {
                queue.append(message)
                return nil
            }
            self.waiter = nil
            return waiter.continuation
        }
        waiting?.resume(returning: message)
    }

    /// The next message, or nil when none arrives within `timeout` (or the link closed).
    func next(within timeout: Duration) async -> ChunkMessage? {
        await withCheckedContinuation { continuation in
            let id = lock.withLock { () -> UInt64? in
                if !queue.isEmpty || closed { return nil }
                waits += 1
                waiter = (waits, continuation)
                return waits
            }
            guard let id else { return continuation.resume(returning: lock.withLock { queue.isEmpty ? nil : queue.removeFirst() }) }
            Task {
                try? await Task.sleep(for: timeout)
                self.expire(id)
            }
        }
    }

    private func expire(_ id: UInt64) {
        let waiting = lock.withLock { () -> CheckedContinuation<ChunkMessage?, Never>? in
            guard let waiter, waiter.id == id else { return nil }
            self.waiter = nil
            return waiter.continuation
        }
        waiting?.resume(returning: nil)
    }

    func close() {
        let waiting = lock.withLock { () -> CheckedContinuation<ChunkMessage?, Never>? in
            closed = true
            defer { waiter = nil }
            return waiter?.continuation
        }
        waiting?.resume(returning: nil)
    }
}
