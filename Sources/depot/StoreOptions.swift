import ArgumentParser
import Foundation
import ModelStore

/// Options every store command shares.
struct StoreOptions: ParsableArguments {
    @Option(name: .long, help: "Store directory (default: $DEPOT_HOME, $XDG_DATA_HOME/depot or ~/.local/share/depot).")
    var store: String?

    @Flag(name: .long, help: "Print machine-readable JSON instead of text.")
    var json = false

    /// Opens the store and runs `body`, turning store errors into a message and an exit code.
    func withStore(_ body: (ModelStore) throws(StoreError) -> Void) throws(ExitCode) {
        let store = try openStore()
        do throws(StoreError) {
            try body(store)
        } catch {
            Output.error(error.message)
            throw ExitCode(error.exitCode)
        }
    }

    /// Opens the store, or prints why not and exits with the store error's code.
    func openStore() throws(ExitCode) -> ModelStore {
        do { return try ModelStore(root: store ?? StoreLocation.defaultRoot()) } catch {
            Output.error(error.message)
            throw ExitCode(error.exitCode)
        }
    }

    /// Prints `value` as JSON when `--json` was given, else runs `text`.
    func emit<T: Encodable>(_ value: T, text: () -> Void) {
        if json { Output.json(value) } else { text() }
    }
}

extension StoreError {
    /// The process exit code for this kind of failure (listed in `depot --help`).
    var exitCode: Int32 {
        switch code {
        case .invalidName, .invalidInput, .notGGUF, .sourceChanged: 2
        case .notFound: 3
        case .inUse, .alreadyExists: 4
        case .corrupt: 5
        case .diskFull: 6
        case .unwritable: 7
        case .database, .io: 1
        }
    }
}
