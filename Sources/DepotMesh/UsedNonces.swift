import Foundation

/// Registration nonces already taken, until they expire: a replayed registration finds its
/// nonce here. Expired ones leave from the front of a queue kept in the order they were taken
/// (nonces live a minute each, so that is nearly the order they expire), so pruning costs no
/// pass over all of them.
struct UsedNonces {
    enum Outcome { case fresh, used, full }

    let capacity: Int
    private var expiries: [String: Date] = [:]
    private var order = FIFOQueue<(nonce: String, expires: Date)>()

    init(capacity: Int = 100_000) { self.capacity = capacity }

    var count: Int { expiries.count }

    mutating func use(_ nonce: String, expiring: Date, at now: Date) -> Outcome {
        while let front = order.first, front.expires <= now {
            expiries[front.nonce] = nil
            order.removeFirst()
        }
        guard expiries[nonce] == nil else { return .used }
        guard expiries.count < capacity else { return .full }
        expiries[nonce] = expiring
        order.append((nonce, expiring))
        return .fresh
    }
}
