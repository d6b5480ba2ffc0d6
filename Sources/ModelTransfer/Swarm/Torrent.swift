import Foundation

/// A BitTorrent v2 metainfo file (BEP 52) for one model file, with web seeds (BEP 19): any v2
/// client can fetch the model from the CDN and from seeding agents, checking every piece
/// against the same root a catalog carries.
public struct Torrent: Sendable {
    public var name: String
    public var pieces: MerklePieces
    /// Addresses of the whole file: the CDN's, `…/p2p/blobs/sha256/<hex>` of seeding agents.
    public var webSeeds: [String]

    public init(name: String, pieces: MerklePieces, webSeeds: [String]) {
        self.name = name
        self.pieces = pieces
        self.webSeeds = webSeeds
    }

    /// The bencoded file.
    public var encoded: Data {
        let file: Bencode = .dictionary(["length": .integer(Int64(pieces.fileSize)), "pieces root": .bytes(pieces.root)])
        let info: Bencode = .dictionary([
            "file tree": .dictionary([name: .dictionary(["": file])]),
            "meta version": .integer(2),
            "name": .string(name),
            "piece length": .integer(Int64(pieces.pieceSize)),
        ])
        var top: [String: Bencode] = ["info": info]
        // BEP 52: files of one piece or less have no layer (their root is their one piece).
        if pieces.fileSize > pieces.pieceSize { top["piece layers"] = .dictionaryOfBytes([pieces.root: .bytes(pieces.layerBytes)]) }
        if !webSeeds.isEmpty { top["url-list"] = .list(webSeeds.map(Bencode.string)) }
        var out = Data()
        Bencode.dictionary(top).write(to: &out)
        return out
    }
}

/// BitTorrent's encoding (BEP 3); dictionary keys are written in byte order, as it requires.
enum Bencode {
    case integer(Int64)
    case bytes(Data)
    case list([Bencode])
    case dictionary([String: Bencode])
    /// A dictionary whose keys are raw bytes (`piece layers` is keyed by 32-byte roots).
    case dictionaryOfBytes([Data: Bencode])

    static func string(_ text: String) -> Bencode { .bytes(Data(text.utf8)) }

    func write(to out: inout Data) {
        switch self {
        case .integer(let value):
            out.append(contentsOf: Array("i\(value)e".utf8))
        case .bytes(let bytes):
            out.append(contentsOf: Array("\(bytes.count):".utf8))
            out.append(bytes)
        case .list(let items):
            out.append(UInt8(ascii: "l"))
            for item in items { item.write(to: &out) }
            out.append(UInt8(ascii: "e"))
        case .dictionary(let entries):
            Bencode.dictionaryOfBytes(Dictionary(uniqueKeysWithValues: entries.map { (Data($0.key.utf8), $0.value) })).write(to: &out)
        case .dictionaryOfBytes(let entries):
            out.append(UInt8(ascii: "d"))
            for key in entries.keys.sorted(by: { $0.lexicographicallyPrecedes($1) }) {
                Bencode.bytes(key).write(to: &out)
                entries[key]!.write(to: &out)
            }
            out.append(UInt8(ascii: "e"))
        }
    }
}
