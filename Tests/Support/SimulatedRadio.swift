import Foundation
import MeshProtocol

/// A radio link between two devices, simulated with the limits of a BLE characteristic:
/// values of at most 512 bytes (a larger one is an error, as on a phone), a byte rate each
/// way in real time, and values lost, repeated or overtaken, from a seeded generator. The
/// radio cannot exist on these machines; everything above it is the real code.
public final class SimulatedRadio: @unchecked Sendable {
    public struct Limits: Sendable {
        public var bytesPerSecond: Double
        public var loss: Double
        public var repeats = 0.02
        public var reorders = 0.05

        public init(bytesPerSecond: Double, loss: Double) {
            self.bytesPerSecond = bytesPerSecond
            self.loss = loss
        }
    }

    /// One end: what it sends arrives at the other.
    public final class End: ChunkLink, @unchecked Sendable {
        public let incoming: AsyncStream<[UInt8]>
        let arrive: AsyncStream<[UInt8]>.Continuation
        weak var radio: SimulatedRadio?
        weak var other: End?

        init() { (incoming, arrive) = AsyncStream<[UInt8]>.makeStream() }

        public func send(_ value: [UInt8]) async throws {
            guard let radio, let other else { throw SimulatedRadio.Failure.closed }
            try await radio.carry(value, to: other)
        }
    }

    public enum Failure: Error {
        case tooLarge(Int)
        case closed
    }

    public let a = End()
    public let b = End()
    let limits: Limits
    // Guarded by `lock`.
    private var random: SplitMix
    private var airFreeAt = ContinuousClock.now
    private var held: (value: [UInt8], to: End)?
    private var closed = false
    private var counts = (sent: 0, lost: 0, bytesOnAir: 0, oversized: 0)
    private let lock = NSLock()

    public init(_ limits: Limits, seed: UInt64) {
        self.limits = limits
        random = SplitMix(state: seed)
        a.radio = self
        b.radio = self
        a.other = b
        b.other = a
    }

    /// Values sent, values lost, bytes that went on the air (both ways), and values refused
    /// for being larger than a characteristic.
    public var sent: Int { lock.withLock { counts.sent } }
    public var oversized: Int { lock.withLock { counts.oversized } }
    public var lost: Int { lock.withLock { counts.lost } }
    public var bytesOnAir: Int { lock.withLock { counts.bytesOnAir } }

    /// Ends the link: both sides' incoming values end, and sending fails.
    public func close() {
        lock.withLock { closed = true }
        a.arrive.finish()
        b.arrive.finish()
    }

    func carry(_ value: [UInt8], to end: End) async throws {
        guard value.count <= ChunkMessage.maximumSize else {
            lock.withLock { counts.oversized += 1 }
            throw Failure.tooLarge(value.count)
        }
        // The air is shared: a value goes out once those before it have.
        let (departure, deliveries) = try lock.withLock { () throws -> (ContinuousClock.Instant, [([UInt8], End)]) in
            guard !closed else { throw Failure.closed }
            let now = ContinuousClock.now
            airFreeAt = max(airFreeAt, now) + .seconds(Double(value.count) / limits.bytesPerSecond)
            counts.sent += 1
            counts.bytesOnAir += value.count
            if random.unit() < limits.loss {
                counts.lost += 1
                return (airFreeAt, [])
            }
            var out: [([UInt8], End)] = []
            if random.unit() < limits.reorders, held == nil {
                held = (value, end)
            } else {
                out.append((value, end))
                if let overtaken = held {
                    out.append(overtaken)
                    held = nil
                }
            }
            if random.unit() < limits.repeats { out.append((value, end)) }
            return (airFreeAt, out)
        }
        // Sleeping a few milliseconds at a time keeps the rate without a timer per value.
        if departure - ContinuousClock.now > .milliseconds(4) { try await Task.sleep(until: departure, clock: .continuous) }
        for (value, end) in deliveries { end.arrive.yield(value) }
    }
}

/// A small seeded generator (SplitMix64).
struct SplitMix {
    var state: UInt64

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func unit() -> Double { Double(next() >> 11) / Double(1 << 53) }
}
