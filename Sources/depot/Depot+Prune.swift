import ArgumentParser
import ModelStore

extension Depot {
    struct Prune: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Remove least-recently-used models until the store fits a size; pinned models stay.")

        @Option(help: "Size to fit in: bytes, or with a unit (500MB, 4G, 2GiB).", transform: { text in
            guard let bytes = ByteCount.parse(text) else {
                throw ValidationError("'\(text)' is not a size; write bytes or a number with K, M, G, T, KiB, MiB, GiB or TiB")
            }
            return bytes
        })
        var maxBytes: UInt64
        @Flag(help: "Print the plan without removing anything.") var dryRun = false
        @OptionGroup var options: StoreOptions

        func run() throws {
            try options.withStore { store throws(StoreError) in
                let plan = try store.pruneLeastRecentlyUsed(toFit: maxBytes, dryRun: dryRun)
                options.emit(plan) {
                    let verb = dryRun ? "would remove" : "removed"
                    for removal in plan.removals {
                        print("\(verb) \(removal.name)  last used \(Output.age(removal.lastUsedAt))  frees \(ByteCount.format(removal.bytesReclaimed))")
                    }
                    print("\(dryRun ? "would reclaim" : "reclaimed") \(ByteCount.format(plan.bytesReclaimed)); store \(ByteCount.format(plan.usedBytes)) → \(ByteCount.format(plan.bytesAfter)) (limit \(ByteCount.format(maxBytes)))")
                    if !plan.fits {
                        print("still over the limit: pinned models (\(plan.pinned.joined(separator: ", "))) are never pruned")
                    }
                }
            }
        }
    }

    struct GC: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "gc",
            abstract: "Remove unreferenced blobs and stale temporary files.")

        @Option(help: "Keep temporary files younger than this many seconds.") var grace: Double?
        @OptionGroup var options: StoreOptions

        func run() throws {
            if let grace, !(grace.isFinite && (0...10 * 366 * 86_400).contains(grace)) {
                throw ValidationError("--grace must be 0 to \(10 * 366 * 86_400) seconds")
            }
            try options.withStore { store throws(StoreError) in
                let report = try store.collectGarbage(gracePeriod: grace)
                options.emit(report) {
                    print("removed \(Output.plural(report.removedBlobs.count, "unreferenced blob")) and \(Output.plural(report.removedTemporaryFiles.count, "temporary file")), freed \(ByteCount.format(report.bytesFreed)); kept \(report.keptTemporaryFiles) in use or recent")
                }
            }
        }
    }
}
