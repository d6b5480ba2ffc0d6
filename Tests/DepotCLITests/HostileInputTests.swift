import DepotTestSupport
import Foundation
import Testing

/// Hostile model files given to the built binary, as a downloaded "model" could be.
@Suite struct HostileInputTests {
    /// A GGUF v3 header: magic, version, tensor count, metadata count.
    static func header(tensors: UInt64, entries: UInt64) -> Data {
        var bytes = Data("GGUF".utf8)
        withUnsafeBytes(of: UInt32(3).littleEndian) { bytes.append(contentsOf: $0) }
        for count in [tensors, entries] { withUnsafeBytes(of: count.littleEndian) { bytes.append(contentsOf: $0) } }
        return bytes
    }

    @Test func aSparseFileClaimingBillionsOfTensorsIsATypedErrorNotACrash() throws {
        let workspace = Workspace()
        defer { workspace.remove() }
        let path = workspace.path + "/sparse.gguf"
        // 4 KB of data in a 100 GB file: two billion tensor infos would fit, as far as the size says.
        try (Self.header(tensors: 2_000_000_000, entries: 0) + Data(count: 4_096 - 24)).write(to: URL(fileURLWithPath: path))
        #expect(truncate(path, 100 << 30) == 0)
        let imported = try workspace.depot.run(["import", path, "--name", "sparse:x"])
        #expect(imported.status != 0 && imported.status != 134 && imported.status != 132, "exit \(imported.status)")
        #expect(imported.stderr.contains("2000000000 tensors") && imported.stderr.contains("offset 8"), "\(imported.stderr)")
        #expect(try workspace.depot.run(["show", "sparse:x"]).status != 0)
    }

    @Test func manyTinyMetadataEntriesAreRefusedByCount() throws {
        let workspace = Workspace()
        defer { workspace.remove() }
        var file = Self.header(tensors: 0, entries: 200_000)
        for index in 0..<200_000 {
            let key = Data("k\(index)".utf8)
            withUnsafeBytes(of: UInt64(key.count).littleEndian) { file.append(contentsOf: $0) }
            file.append(key)
            withUnsafeBytes(of: UInt32(0).littleEndian) { file.append(contentsOf: $0) }  // uint8
            file.append(1)
        }
        let path = workspace.path + "/many.gguf"
        try file.write(to: URL(fileURLWithPath: path))
        let imported = try workspace.depot.run(["import", path, "--name", "many:x"])
        #expect(imported.status != 0 && imported.stderr.contains("200000 metadata entries"), "\(imported.stderr)")
    }

    @Test func aKeyThatIsNotUTF8IsRefusedWithItsOffset() throws {
        let workspace = Workspace()
        defer { workspace.remove() }
        var file = Self.header(tensors: 0, entries: 1)
        withUnsafeBytes(of: UInt64(2).littleEndian) { file.append(contentsOf: $0) }
        file.append(contentsOf: [0xFF, 0xFE])
        withUnsafeBytes(of: UInt32(0).littleEndian) { file.append(contentsOf: $0) }
        file.append(1)
        let path = workspace.path + "/key.gguf"
        try file.write(to: URL(fileURLWithPath: path))
        let imported = try workspace.depot.run(["import", path, "--name", "key:x"])
        #expect(imported.status != 0 && imported.stderr.contains("UTF-8") && imported.stderr.contains("offset 32"), "\(imported.stderr)")
    }
}
