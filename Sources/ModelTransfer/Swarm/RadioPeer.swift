import Foundation
import MeshProtocol
import NIOCore

/// A phone nearby that holds a blob, reached over a radio link (a BLE GATT characteristic):
/// a swarm source beside the HTTP peers. Ranges are asked for a window at a time, a few
/// windows ahead; what the link loses is asked for again (`receive`), and a window reaches the
/// download only when all of it has arrived, so the bytes go on in order. The pieces are
/// checked against the manifest like any peer's.
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
        /// Windows asked for ahead of the one being completed.
        public var windowsInFlight = 4

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
        var transfer = WindowedTransfer(range: range, pieceSize: pieceSize, window: UInt64(timing.window))
        let finished = try await receive(&transfer, stream: stream, inbox: inbox, consume: consume)
        if !finished { try? await send(.cancel(stream: stream, piece: transfer.windows.first?.assembly.piece ?? 0)) }
    }

    // MARK: The link

    /// Receives a range a window at a time, with `windowsInFlight` windows asked for ahead,
    /// handing each on in order once it is complete; false when `consume` wants no more.
    /// The seeder answers requests in order, so data for a later window means what an earlier
    /// one still lacks was lost: that is asked for again at once. When the link goes quiet,
    /// everything missing is.
    private func receive(_ transfer: inout WindowedTransfer, stream: UInt16, inbox: Inbox,
                         consume: (UInt64, ByteBuffer) throws -> Bool) async throws(FetchFailure) -> Bool {
        var silent = 0
        var wait = timing.firstAnswer, lastArrival: ContinuousClock.Instant?, longestGap = Duration.zero
        while true {
            while transfer.windows.count < timing.windowsInFlight, let window = transfer.nextWindow() {
                try await request(window.assembly.missing, of: window.assembly, stream: stream)
            }
            guard let first = transfer.windows.first else { return true }
            guard let message = await inbox.next(within: wait) else {
                guard !Task.isCancelled else { throw .fatal(TransferError(.cancelled, "the transfer was cancelled")) }
                silent = lastArrival != nil ? 0 : silent + 1
                if silent >= timing.silentRounds || inbox.isClosed { throw .transient("the radio link to \(name) went quiet") }
                // Whatever the seeder still has queued would come twice.
                try await send(.cancel(stream: stream, piece: first.assembly.piece))
                for index in transfer.windows.indices {
                    transfer.windows[index].askedAgain = true
                    try await request(transfer.windows[index].assembly.missing, of: transfer.windows[index].assembly, stream: stream)
                }
                (wait, lastArrival, longestGap) = (timing.firstAnswer, nil, .zero)
                continue
            }
            guard !Task.isCancelled else { throw .fatal(TransferError(.cancelled, "the transfer was cancelled")) }
            if case .refused(_, _, let reason) = message { throw Self.failure(reason, name: name) }
            guard let index = transfer.windows.indices.first(where: { transfer.windows[$0].assembly.add(message) }) else { continue }
            // A busy device (or a slower link) spaces values out: the quiet that ends a round
            // stretches with the longest gap seen, so nothing on its way is asked for twice.
            let now = ContinuousClock.now
            if let lastArrival { longestGap = max(longestGap, now - lastArrival) }
            lastArrival = now
            wait = min(max(timing.quiet, longestGap * 4), timing.firstAnswer * 2)
            for earlier in 0..<index where !transfer.windows[earlier].askedAgain && !transfer.windows[earlier].assembly.isComplete {
                transfer.windows[earlier].askedAgain = true
                try await request(transfer.windows[earlier].assembly.missing, of: transfer.windows[earlier].assembly, stream: stream)
            }
            while let done = transfer.windows.first, done.assembly.isComplete {
                transfer.windows.removeFirst()
                do {
                    guard try consume(done.offset, ByteBuffer(bytes: done.assembly.bytes)) else { return false }
                } catch let error as TransferError {
                    throw .fatal(error)
                } catch {
                    throw .transient("\(error)")
                }
            }
        }
    }

    private func request(_ ranges: [Range<Int>], of assembly: PieceAssembly, stream: UInt16) async throws(FetchFailure) {
        for missing in ranges {
            try await send(.pieceRequest(stream: stream, sha256: sha256, piece: assembly.piece,
                                         offset: UInt32(assembly.start + missing.lowerBound), length: UInt32(missing.count)))
        }
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

/// A range cut into windows within the seeder's pieces, the first few in flight.
private struct WindowedTransfer {
    struct Window {
        let offset: UInt64
        var assembly: PieceAssembly
        /// Asked for again since it was first asked for.
        var askedAgain = false
    }

    let range: Range<UInt64>
    let pieceSize: UInt64
    let window: UInt64
    private var position: UInt64
    var windows: [Window] = []

    init(range: Range<UInt64>, pieceSize: UInt64, window: UInt64) {
        self.range = range
        self.pieceSize = pieceSize
        self.window = window
        position = range.lowerBound
    }

    /// The next window of the range, now in flight; nil at the end.
    mutating func nextWindow() -> Window? {
        guard position < range.upperBound else { return nil }
        let piece = position / pieceSize
        let pieceStart = piece * pieceSize
        let end = min(range.upperBound, pieceStart + pieceSize, position + window)
        let next = Window(offset: position, assembly: PieceAssembly(piece: UInt32(piece), range: Int(position - pieceStart)..<Int(end - pieceStart)))
        position = end
        windows.append(next)
        return next
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
