import Testing
@testable import ModelTransfer

@Suite struct IntervalSetTests {
    @Test func insertMergesAndGapsComplement() {
        var set = IntervalSet([10..<20, 30..<40])
        set.insert(20..<25)
        set.insert(0..<5)
        #expect(set.ranges == [0..<5, 10..<25, 30..<40])
        set.insert(4..<31)
        #expect(set.ranges == [0..<40])
        #expect(set.contiguousPrefix == 40)
        #expect(IntervalSet([5..<10]).gaps(upTo: 20) == [0..<5, 10..<20])
        #expect(IntervalSet([5..<10]).contiguousPrefix == 0)
        #expect(set.count == 40)
    }
}

@Suite struct RangeSchedulerTests {
    @Test func splitsForEveryConnectionAndResumesOnlyTheGaps() {
        let scheduler = RangeScheduler(size: 1000, completed: IntervalSet([0..<100]), connections: 3,
                                       minimumSplit: 10, checkpointBytes: 1 << 20)
        var taken: [Range<UInt64>] = []
        for worker in 0..<3 { taken.append(scheduler.take(worker: worker)!) }
        #expect(taken.first?.lowerBound == 100, "the lowest range first, so hashing can start")
        #expect(IntervalSet(taken).ranges == [100..<1000])
        #expect(scheduler.writtenBytes == 100)
    }

    @Test func anIdleConnectionStealsHalfOfTheLargestRange() {
        let scheduler = RangeScheduler(size: 1000, completed: IntervalSet(), connections: 1,
                                       minimumSplit: 10, checkpointBytes: 1 << 20)
        #expect(scheduler.take(worker: 0) == 0..<1000)
        #expect(scheduler.claim(worker: 0, offset: 0, length: 200) == 200)
        _ = scheduler.recordWritten(0..<200)
        #expect(scheduler.take(worker: 1) == 600..<1000)
        // Worker 0's range now ends at 600: a chunk running past it is cut there.
        #expect(scheduler.claim(worker: 0, offset: 200, length: 500) == 400)
        #expect(scheduler.isFinished(worker: 0))
        #expect(scheduler.claim(worker: 0, offset: 600, length: 10) == 0)
    }

    @Test func aFailedConnectionGivesItsRestBack() {
        let scheduler = RangeScheduler(size: 100, completed: IntervalSet(), connections: 1,
                                       minimumSplit: 10, checkpointBytes: 1 << 20)
        _ = scheduler.take(worker: 0)
        _ = scheduler.claim(worker: 0, offset: 0, length: 30)
        scheduler.release(worker: 0)
        #expect(scheduler.take(worker: 1) == 30..<100)
    }

    @Test func smallRangesAreNotStolen() {
        let scheduler = RangeScheduler(size: 15, completed: IntervalSet(), connections: 4,
                                       minimumSplit: 10, checkpointBytes: 1 << 20)
        #expect(scheduler.take(worker: 0) == 0..<15)
        #expect(scheduler.take(worker: 1) == nil)
    }

    @Test func checkpointsFallDueByBytes() {
        let scheduler = RangeScheduler(size: 100, completed: IntervalSet(), connections: 1,
                                       minimumSplit: 10, checkpointBytes: 50)
        _ = scheduler.recordWritten(0..<30)
        #expect(!scheduler.isCheckpointDue)
        _ = scheduler.recordWritten(30..<60)
        #expect(scheduler.isCheckpointDue)
        scheduler.checkpointTaken()
        _ = scheduler.recordWritten(60..<70)
        #expect(!scheduler.isCheckpointDue)
    }

    @Test func withPiecesOnlyCheckedPiecesCountAndABadOneIsPendingAgain() {
        let manifest = PieceManifest(pieceSize: 40, sha256: Array(repeating: String(repeating: "0", count: 64), count: 3))
        // The journal's 0..<50 holds one whole piece; the ten bytes of the next do not count.
        let scheduler = RangeScheduler(size: 100, completed: IntervalSet([0..<50]), pieces: manifest, connections: 1,
                                       minimumSplit: 10, checkpointBytes: 1000)
        #expect(scheduler.checkpointRanges == IntervalSet([0..<40]))
        #expect(scheduler.take(worker: 0) == 40..<100)
        #expect(scheduler.claim(worker: 0, offset: 40, length: 60) == 60)
        #expect(scheduler.recordWritten(40..<70) == [])
        #expect(scheduler.recordWritten(70..<100) == [1, 2])
        #expect(scheduler.contiguousPrefix == 40, "unchecked pieces are not hashed yet")
        scheduler.pieceChecked(1, good: true)
        #expect(scheduler.pieceChecked(2, good: false) == 1)
        #expect(scheduler.contiguousPrefix == 80)
        #expect(scheduler.checkpointRanges == IntervalSet([0..<80]))
        #expect(scheduler.take(worker: 0) == 80..<100, "the bad piece is fetched again")
    }

    @Test func swarmPickingTakesTheRarestOfferedPiecesAndWalksOnFromWhereItLeftOff() {
        let manifest = PieceManifest(pieceSize: 10, sha256: Array(repeating: String(repeating: "0", count: 64), count: 10))
        let scheduler = RangeScheduler(size: 100, completed: IntervalSet([0..<20]), pieces: manifest, connections: 1,
                                       minimumSplit: 10, checkpointBytes: 1000)
        // Pieces 0 and 1 are done; the peer offers 3 to 8; piece 6 has one holder, the rest two.
        let holders = { (piece: Int) in piece == 6 ? 1 : 2 }
        let offered = { (piece: Int) in (3...8).contains(piece) }
        #expect(scheduler.takePieces(worker: 0, maximumBytes: 20, offered: offered, holders: holders) == 60..<80,
                "the rarest first, extended over the next offered piece")
        #expect(scheduler.takePieces(worker: 1, maximumBytes: 10, continuing: 30, offered: offered, holders: { _ in 0 }) == 30..<40,
                "a connection walks on from where it left off")
        #expect(scheduler.takePieces(worker: 2, maximumBytes: 100, continuing: 30, offered: offered, holders: { _ in 0 }).map {
            [40..<60, 50..<60, 80..<90].contains($0)
        } == true, "where it left off is taken: an offered piece at random, extended up to the next gap")
        #expect(scheduler.takePieces(worker: 3, maximumBytes: 100, offered: { $0 < 2 }, holders: holders) == nil, "nothing offered is pending")
        #expect(scheduler.hasPending)
        scheduler.release(worker: 0)
        #expect(scheduler.takePieces(worker: 4, maximumBytes: 10, offered: { $0 == 7 }, holders: holders) == 70..<80,
                "a released range is pending again")
    }

    @Test func intervalSetsRemoveAndCover() {
        var set = IntervalSet([0..<100])
        set.remove(20..<30)
        #expect(set == IntervalSet([0..<20, 30..<100]))
        #expect(set.covers(30..<100) && !set.covers(10..<40))
    }
}

@Suite struct SourceTests {
    @Test func redactionRemovesCredentials() {
        let url = "https://user:hunter2@cdn.example.com/m/q4.gguf?X-Amz-Signature=abc&X-Amz-Credential=k&token=t&sig=s&revision=main#frag"
        #expect(Redaction.redact(url) == "https://cdn.example.com/m/q4.gguf?revision=main")
        // Names no list of secrets knows: only the allow-list decides.
        #expect(Redaction.redact("https://h/f.gguf?__token__=exp=1~hmac=ab&md5=cd&expires=2&verify=3-ef&download=1")
                == "https://h/f.gguf?download=1")
        #expect(Redaction.redact("https://h/f.gguf?hf_token=x&Expires=1&Signature=y&Key-Pair-Id=z") == "https://h/f.gguf")
        #expect(Redaction.scrub("failed with sesame123 here", secrets: ["sesame123"]) == "failed with <redacted> here")
    }

    @Test func huggingFaceReferences() throws {
        let source = try TransferSource("hf://Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF@v1.0/sub/q4_k_m.gguf",
                                        huggingFaceEndpoint: "https://huggingface.co")
        #expect(source.url.absoluteString == "https://huggingface.co/Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF/resolve/v1.0/sub/q4_k_m.gguf")
        #expect(source.filename == "q4_k_m.gguf")
        #expect(source.isHuggingFace)
        #expect(try TransferSource("hf://a/b/c.gguf", huggingFaceEndpoint: "http://127.0.0.1:9").url.absoluteString
                == "http://127.0.0.1:9/a/b/resolve/main/c.gguf")
    }

    @Test(arguments: ["ftp://x/y.gguf", "hf://only-owner", "hf://a/b/../c.gguf", "not a url", "/local/file.gguf", "https://"])
    func badSources(text: String) {
        #expect(throws: TransferError.self) { try TransferSource(text, huggingFaceEndpoint: "https://huggingface.co") }
    }

    @Test func expectedHashesAreChecked() throws {
        #expect(throws: TransferError.self) { try ExpectedHash(sha256: "abc", source: .user) }
        #expect(try ExpectedHash(sha256: String(repeating: "AB", count: 32), source: .user).sha256 == String(repeating: "ab", count: 32))
    }
}

/// The end of a swarm download: stealing pieces not started, and a second copy of a piece
/// a slow source is still writing.
@Suite struct EndgameSchedulerTests {
    static let manifest = PieceManifest(pieceSize: 10, sha256: Array(repeating: String(repeating: "0", count: 64), count: 10))

    @Test func anIdleWorkerStealsOnlyWhatNobodyStartedAndOnlyOnceNothingIsPending() {
        let scheduler = RangeScheduler(size: 100, completed: IntervalSet(), pieces: Self.manifest, connections: 1,
                                       minimumSplit: 10, checkpointBytes: 1000)
        #expect(scheduler.takePieces(worker: 0, maximumBytes: 60, continuing: 0, offered: { $0 < 6 }, holders: { _ in 1 }) == 0..<60)
        #expect(scheduler.stealPieces(worker: 1, age: .zero, offered: { _ in true }) == nil, "pieces 6 to 9 are still pending")
        #expect(scheduler.takePieces(worker: 2, maximumBytes: 40, continuing: 60, offered: { _ in true }, holders: { _ in 1 }) == 60..<100)
        #expect(scheduler.claim(worker: 0, offset: 0, length: 15) == 15)
        #expect(scheduler.claim(worker: 2, offset: 60, length: 15) == 15)
        #expect(scheduler.stealPieces(worker: 1, age: .seconds(60), offered: { _ in true }) == nil, "ranges just handed out are left alone")
        // Worker 0 is inside piece 1; pieces 2 to 5 are not started: the upper half goes.
        #expect(scheduler.stealPieces(worker: 1, age: .zero, offered: { $0 != 9 }) == 40..<60, "from worker 0, whose run is longest")
        #expect(scheduler.claim(worker: 0, offset: 15, length: 100) == 25, "worker 0 stops where the stolen pieces start")
        #expect(scheduler.stealPieces(worker: 3, age: .zero, offered: { _ in false }) == nil, "nothing the thief's source has")
    }

    @Test func aVerifiedCopyTakesASlowPieceOverAndTheSlowWorkerStops() {
        let scheduler = RangeScheduler(size: 100, completed: IntervalSet([0..<70]), pieces: Self.manifest, connections: 1,
                                       minimumSplit: 10, checkpointBytes: 1000)
        #expect(scheduler.takePieces(worker: 0, maximumBytes: 30, continuing: 70, offered: { _ in true }, holders: { _ in 1 }) == 70..<100)
        #expect(scheduler.claim(worker: 0, offset: 70, length: 4) == 4)
        #expect(scheduler.endgamePiece(worker: 1, age: .seconds(60), slower: { _ in true }, offered: { _ in true }) == nil, "not slow yet")
        #expect(scheduler.endgamePiece(worker: 1, age: .zero, slower: { _ in true }, offered: { $0 != 7 }) == nil, "the copy's source lacks piece 7")
        #expect(scheduler.endgamePiece(worker: 1, age: .zero, slower: { $0 != 0 }, offered: { _ in true }) == nil,
                "worker 0 fetches from the same source as worker 1")
        #expect(scheduler.endgamePiece(worker: 1, age: .zero, slower: { _ in true }, offered: { _ in true }) == 7)
        #expect(scheduler.endgamePiece(worker: 2, age: .zero, slower: { _ in true }, offered: { _ in true }) == nil, "one copy a piece")
        #expect(scheduler.isWriting(into: 70..<80), "worker 0's four bytes are claimed, not yet written")
        #expect(scheduler.takeOver(7, by: 1) == 4, "worker 0 had claimed four bytes of it")
        #expect(scheduler.claim(worker: 0, offset: 74, length: 6) == 0, "worker 0 stops at once")
        #expect(scheduler.hasPending, "pieces 8 and 9, which worker 0 had not started, are pending again")
        _ = scheduler.recordWritten(70..<74, by: 0)
        #expect(!scheduler.isWriting(into: 70..<80) && !scheduler.isSettled(7))
        #expect(scheduler.recordWritten(70..<80, by: 1) == [7])
        #expect(scheduler.isSettled(7))
    }

    @Test func aCopyArrivingAfterTheSlowSourceFinishedChangesNothing() {
        let scheduler = RangeScheduler(size: 100, completed: IntervalSet([0..<90]), pieces: Self.manifest, connections: 1,
                                       minimumSplit: 10, checkpointBytes: 1000)
        #expect(scheduler.takePieces(worker: 0, maximumBytes: 10, offered: { _ in true }, holders: { _ in 1 }) == 90..<100)
        #expect(scheduler.endgamePiece(worker: 1, age: .zero, slower: { _ in true }, offered: { _ in true }) == 9)
        #expect(scheduler.claim(worker: 0, offset: 90, length: 10) == 10)
        #expect(scheduler.recordWritten(90..<100, by: 0) == [9])
        #expect(scheduler.isSettled(9))
        #expect(scheduler.takeOver(9, by: 1) == nil, "the piece is being checked: the copy is dropped")
        #expect(scheduler.endgamePiece(worker: 1, age: .zero, slower: { _ in true }, offered: { _ in true }) == nil)
    }
}
