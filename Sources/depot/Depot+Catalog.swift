import ArgumentParser
import Crypto
import Foundation
import ModelCatalog
import ModelStore
import ModelTransfer

/// Where the catalog comes from: `--catalog`, else `$DEPOT_CATALOG`, else the cached copy's address.
struct CatalogOptions: ParsableArguments {
    @Option(help: "Catalog URL or file (default: $DEPOT_CATALOG, else the last one used).") var catalog: String?
    @Option(help: "Base64 Ed25519 public key the catalog must be signed with (default: $DEPOT_CATALOG_KEY).") var catalogKey: String?

    var source: String? {
        catalog ?? ProcessInfo.processInfo.environment["DEPOT_CATALOG"].flatMap { $0.isEmpty ? nil : $0 }
    }

    var key: String? {
        catalogKey ?? ProcessInfo.processInfo.environment["DEPOT_CATALOG_KEY"].flatMap { $0.isEmpty ? nil : $0 }
    }

    func load(into store: ModelStore) async throws(ExitCode) -> CatalogSnapshot {
        do {
            let trusted = try key.map { text throws(CatalogError) in try CatalogSignature.publicKey(text) }
            let snapshot = try await CatalogCache(storeRoot: store.root).load(source, trustedKey: trusted)
            if snapshot.isStale {
                Output.error("using the catalog cached \(Output.age(snapshot.fetchedAt)) (stale): \(snapshot.staleReason ?? "")")
            }
            return snapshot
        } catch {
            Output.error(error.message)
            throw ExitCode(error.exitCode)
        }
    }
}

extension CatalogError {
    var exitCode: Int32 {
        switch code {
        case .unreachable: 11
        case .invalid, .unsupportedVersion, .unverified, .noCatalog: 2
        case .badSignature, .replayed: 5
        }
    }
}

extension Depot {
    struct CatalogCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "catalog", abstract: "Browse the model catalog.", subcommands: [List.self, Show.self, KeyGen.self, Sign.self, Pieces.self])

        struct List: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "List catalog models that fit this device (platform and memory); --all for every one.")

            @Flag(help: "Include models for other platforms or with more memory than this device has.") var all = false
            @Option(help: "Platform to filter for (default: this device's).") var platform: String?
            @Option(help: "Memory in MB to filter for (default: this device's).") var memoryMb: UInt64?
            @OptionGroup var catalog: CatalogOptions
            @OptionGroup var options: StoreOptions

            struct Listing: Codable {
                var source: String
                var fetchedAt: Date
                var stale: Bool
                var signedBy: String?
                var models: [CatalogEntry]
            }

            func run() async throws {
                let store = try options.openStore()
                let snapshot = try await catalog.load(into: store)
                let current = DeviceProfile.current
                let device = DeviceProfile(platform: platform ?? current.platform, memoryMB: memoryMb ?? current.memoryMB)
                let models = snapshot.catalog.models.filter { all || $0.fits(device) }
                let installed = Set((try? store.listModels())?.map(\.name) ?? [])
                options.emit(Listing(source: snapshot.source, fetchedAt: snapshot.fetchedAt, stale: snapshot.isStale,
                                     signedBy: snapshot.signedBy, models: models)) {
                    Output.table(["ID", "PARAMS", "QUANT", "SIZE", "MEMORY", "PLATFORM", "STATE"], models.map { entry in
                        [entry.modelId, "\(entry.paramSize)B", entry.quantization, ByteCount.format(entry.fileSizeBytes),
                         "\(entry.minMemoryMB) MB", entry.platform,
                         installed.contains(entry.modelId) ? "installed" : entry.checksumSha256 == nil ? "no checksum" : "available"]
                    })
                    print("\(models.count) of \(snapshot.catalog.models.count) models\(all ? "" : " fit \(device.platform) with \(device.memoryMB) MB"); catalog from \(snapshot.source), fetched \(Output.age(snapshot.fetchedAt))\(snapshot.isStale ? " (stale)" : "")\(snapshot.signedBy == nil ? ", unsigned" : ", signature checked")")
                }
            }
        }

        struct Show: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Show one catalog model.")

            @Argument(help: "Catalog model id.") var id: String
            @OptionGroup var catalog: CatalogOptions
            @OptionGroup var options: StoreOptions

            func run() async throws {
                let store = try options.openStore()
                let snapshot = try await catalog.load(into: store)
                guard let entry = snapshot.catalog.entry(id) else {
                    Output.error("the catalog has no model '\(id)'; `depot catalog list --all` shows them all")
                    throw ExitCode(3)
                }
                options.emit(entry) {
                    let lines: [(String, String)] = [
                        ("id", entry.modelId), ("name", entry.displayName), ("parameters", "\(entry.paramSize)B"),
                        ("quantization", entry.quantization), ("size", ByteCount.format(entry.fileSizeBytes)),
                        ("memory", "\(entry.minMemoryMB) MB"), ("platform", entry.platform),
                        ("languages", entry.languages.joined(separator: ", ")), ("license", entry.license ?? "unknown"),
                        ("download", entry.downloadUrl), ("sha256", entry.checksumSha256 ?? "none (needs --allow-unverified)"),
                        ("projector", entry.projector?.url ?? "none"), ("mirrors", (entry.mirrors ?? []).joined(separator: ", ")),
                        ("pieces", entry.pieces.map { "\($0.sha256.count) of \(ByteCount.format($0.pieceSize))" } ?? "none"),
                    ]
                    for (label, value) in lines { print((label + ":").padding(toLength: 14, withPad: " ", startingAt: 0) + value) }
                }
            }
        }
    
        struct KeyGen: ParsableCommand {
            static let configuration = CommandConfiguration(
                commandName: "keygen", abstract: "Make an Ed25519 key pair for signing a catalog; prints the public key.")
            @Argument(help: "File for the private key (base64, mode 0600); must not exist.") var privateKeyFile: String

            func run() throws {
                let key = Curve25519.Signing.PrivateKey()
                let descriptor = open(privateKeyFile, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
                guard descriptor >= 0 else {
                    Output.error("cannot create \(privateKeyFile): \(String(cString: strerror(errno)))")
                    throw ExitCode(errno == EEXIST ? 4 : 7)
                }
                let handle = FileHandle(fileDescriptor: descriptor, closeOnDealloc: true)
                try handle.write(contentsOf: Data((key.rawRepresentation.base64EncodedString() + "\n").utf8))
                print(key.publicKey.rawRepresentation.base64EncodedString())
            }
        }

        struct Pieces: ParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Print a file's BitTorrent v2 pieces root (BEP 52), the value a catalog entry's piecesRoot carries.")
            @Argument(help: "The model file.") var file: String
            @Option(help: "Bytes per piece: a power of two, at least 16384 (default: about 1,500 pieces, at most 16 MiB).") var pieceSize: UInt64?
            @Flag(help: "Also print the piece layer (hex, one hash per piece).") var layer = false

            struct Description: Encodable {
                var fileSize: UInt64
                var pieceSize: UInt64
                var pieces: Int
                var piecesRoot: String
                var pieceLayer: [String]?
            }

            func run() throws {
                let pieces: MerklePieces
                do {
                    pieces = try MerklePieces(path: file, pieceSize: pieceSize)
                } catch let error as TransferError {
                    Output.error(error.message)
                    throw ExitCode(2)
                } catch {
                    Output.error("cannot read \(file): \(error.localizedDescription)")
                    throw ExitCode(3)
                }
                Output.json(Description(fileSize: pieces.fileSize, pieceSize: pieces.pieceSize, pieces: pieces.layer.count,
                                        piecesRoot: MerklePieces.hex(pieces.root), pieceLayer: layer ? pieces.layer.map(MerklePieces.hex) : nil))
            }
        }

        struct Sign: ParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Sign a catalog file: writes FILE.sig, which devices check with --catalog-key.")
            @Argument(help: "The catalog JSON file.") var file: String
            @Option(help: "Private key file made by `depot catalog keygen`.") var keyFile: String

            func run() throws {
                guard let catalog = FileManager.default.contents(atPath: file) else {
                    Output.error("cannot read \(file)")
                    throw ExitCode(3)
                }
                guard let keyText = FileManager.default.contents(atPath: keyFile) else {
                    Output.error("cannot read the key file \(keyFile)")
                    throw ExitCode(3)
                }
                let signature: String
                do throws(CatalogError) {
                    _ = try Catalog.decode(catalog, source: file)
                    let key = try CatalogSignature.privateKey(String(decoding: keyText, as: UTF8.self))
                    signature = try CatalogSignature.sign(catalog, with: key)
                } catch {
                    Output.error(error.message)
                    throw ExitCode(error.exitCode)
                }
                try Data(signature.utf8).write(to: URL(fileURLWithPath: file + ".sig"))
                print("wrote \(file).sig")
            }
        }
}
}
