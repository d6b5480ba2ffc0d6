import ArgumentParser
import Foundation
import ModelStore
import ModelTransfer

extension Depot {
    struct TorrentCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "torrent",
            abstract: "Write a BitTorrent v2 .torrent for a model's weights, with the CDN and seeding agents as web seeds.",
            discussion: "Any BitTorrent v2 client can then fetch the model over HTTP from those addresses, checking every piece against the pieces root (BEP 52).")

        @Argument(help: "Model name.") var name: String
        @Option(name: .customLong("seeder"), help: "A seeding agent's address (depot serve --seed), e.g. http://10.0.0.5:4302; repeatable.")
        var seeders: [String] = []
        @Option(name: .customLong("web-seed"), help: "Another address of the whole file, e.g. the CDN's; repeatable.") var webSeeds: [String] = []
        @Option(help: "Bytes per piece: a power of two, at least 16384 (default: about 1,500 pieces, at most 16 MiB).") var pieceSize: UInt64?
        @Option(name: .shortAndLong, help: "Where to write the .torrent (default: NAME.torrent here, ':' and '/' as '-').") var output: String?
        @OptionGroup var options: StoreOptions

        func run() throws {
            var found: ModelFile?
            try options.withStore { store throws(StoreError) in found = try store.model(named: name).weights }
            guard let weights = found else {
                Output.error("\(name) has no weights file")
                throw ExitCode(3)
            }
            let addresses = seeders.map { ($0.hasSuffix("/") ? String($0.dropLast()) : $0) + "/p2p/blobs/sha256/\(weights.sha256)/file/" } + webSeeds
            let torrent: Torrent
            do {
                torrent = Torrent(name: weights.originalFilename, pieces: try MerklePieces(path: weights.path, pieceSize: pieceSize),
                                  webSeeds: addresses)
            } catch let error as TransferError {
                Output.error(error.message)
                throw ExitCode(2)
            }
            let path = output ?? name.replacingOccurrences(of: "/", with: "-").replacingOccurrences(of: ":", with: "-") + ".torrent"
            try torrent.encoded.write(to: URL(fileURLWithPath: path))
            print("wrote \(path): pieces root \(MerklePieces.hex(torrent.pieces.root)), \(torrent.pieces.layer.count) pieces of \(torrent.pieces.pieceSize) bytes")
        }
    }
}
