import ModelStore

/// One file and every address it may come from. When an address fails in a way another
/// server could do better (unreachable, refused, lying about the bytes), the next takes
/// over; with a hash known in advance it continues the same partial file.
struct MirroredDownload: Sendable {
    /// Primary first.
    let downloads: [FileDownload]
    let progress: ProgressReporter

    /// The first address that answers, from `start` on.
    func probe(from start: Int = 0) async throws -> (Int, RemoteFile) {
        var index = start
        while true {
            do {
                let remote = try await downloads[index].probe()
                progress.setSource(downloads[index].source.redacted,
                                   note: index > 0 ? "using mirror \(downloads[index].source.redacted)" : nil)
                return (index, remote)
            } catch where index + 1 < downloads.count && Self.anotherServerMightDo(error) {
                index += 1
            }
        }
    }

    func run(from start: Int, _ firstProbe: RemoteFile) async throws -> FileDownload.Result {
        var (index, remote) = (start, firstProbe)
        while true {
            do {
                return try await downloads[index].run(remote)
            } catch where index + 1 < downloads.count && Self.anotherServerMightDo(error) {
                (index, remote) = try await probe(from: index + 1)
            }
        }
    }

    static func anotherServerMightDo(_ error: Error) -> Bool {
        switch error {
        case let error as TransferError:
            [.rejected, .unreachable, .unsupportedServer, .checksumMismatch].contains(error.code)
        case FetchFailure.fatal(let error):
            anotherServerMightDo(error)
        case is FetchFailure:
            true
        default:
            false
        }
    }
}
