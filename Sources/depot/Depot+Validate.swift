import ArgumentParser
import ModelStore

extension Depot {
    struct Validate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check that models' files are intact.",
            discussion: "Without --full, a file whose size, modification time and inode are unchanged since it was last hashed is trusted and not read. Exits with 5 when any model is corrupt.")

        @Argument(help: "Model name (default: every model).") var name: String?
        @Flag(help: "Re-hash every file.") var full = false
        @OptionGroup var options: StoreOptions

        func run() throws {
            var corrupt = 0
            try options.withStore { store throws(StoreError) in
                let results = try store.validate(name: name, full: full)
                corrupt = results.filter { $0.status == .corrupt }.count
                options.emit(results) {
                    for result in results {
                        print("\(result.name)  \(result.status.rawValue)\(result.detail.map { "  \($0)" } ?? "")")
                    }
                    let hashed = results.reduce(0) { $0 + $1.bytesHashed }
                    print("\(Output.plural(results.count, "model")) checked, \(corrupt) corrupt, \(ByteCount.format(hashed)) hashed")
                }
            }
            if corrupt > 0 { throw ExitCode(StoreError(.corrupt, "").exitCode) }
        }
    }
}
