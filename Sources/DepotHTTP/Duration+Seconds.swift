extension Duration {
    /// The duration in seconds, for intervals and ages compared with `Date`s.
    public var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }

    /// A duration from a number of seconds a person typed: nil unless it is positive and at most
    /// `maximum` (so 1e300 is an error, not a trap).
    public static func checkedSeconds(_ value: Double, maximum: Double = 366 * 86_400) -> Duration? {
        guard value.isFinite, value > 0, value <= maximum else { return nil }
        return .milliseconds(Int64((value * 1000).rounded(.up)))
    }
}
