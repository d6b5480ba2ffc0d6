import DepotHTTP
import Foundation
import MeshProtocol
import Testing
@testable import DepotMesh

/// Seed credits and liar reports at the coordinator, in process with real Ed25519 and SQLite,
/// as seeders and downloaders with their own keys (honest, greedy or colluding) would try them.
/// Real agents earning credits over HTTP are in the CLI's SwarmTests.
@Suite struct CreditsTests {
    let directory = "/tmp/depot-credits-\(getpid())-\(UUID().uuidString.prefix(8))"
    let blob = String(repeating: "ab", count: 32)
    let size: UInt64 = 3 << 30

    func coordinator(_ change: (inout Coordinator.Configuration) -> Void = { _ in }) throws -> Coordinator {
        var configuration = Coordinator.Configuration()
        change(&configuration)
        return try Coordinator(directory: directory, configuration: configuration)
    }

    /// Registers `agent`, holding (and seeding) the blob when `holding`; returns its credential.
    func join(_ agent: MeshIdentity, _ coordinator: Coordinator, holding: Bool, at now: Date = Date()) throws -> String {
        var beat = Heartbeat(agentId: agent.id, platform: "linux", freeMemoryMB: 1024, address: "http://10.0.0.\(Int.random(in: 2...250)):4302",
                             activeModel: nil, activeModelParamSize: nil, modelSwapInProgress: false, currentLoad: 0,
                             installedModels: holding ? [.init(name: "big:q4", sha256: blob, sizeBytes: size)] : [])
        beat.seeding = SeedingPolicy(maximumUploads: 4, bytesPerSecond: nil)
        return try coordinator.register(AgentRegistration(identity: agent, challenge: coordinator.challenge(at: now), heartbeat: beat, joinToken: nil), at: now).credential
    }

    /// The ticket `coordinator` gives `downloader` for `seeder`.
    func ticket(_ coordinator: Coordinator, for downloader: String, from seeder: MeshIdentity, at now: Date = Date()) throws -> String {
        let answer = try coordinator.seeders(of: blob, credential: downloader, limit: 32, at: now)
        return try #require(answer.seeders.first { $0.agentId == seeder.id }?.ticket)
    }

    func item(_ ticket: String, _ seeder: MeshIdentity, by downloader: MeshIdentity, bytes: UInt64, sequence: UInt64) throws -> ReceiptSubmission.Item {
        .init(ticket: ticket, receipt: try SeedReceipt(ticketToken: ticket, sha256: blob, seeder: seeder.id, downloader: downloader,
                                                       verifiedBytes: bytes, sequence: sequence))
    }

    @Test func honestReceiptsAreCreditedByTheFormulaAndHeldUntilTheDownloaderHasTheBlob() throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let coordinator = try coordinator()
        let seeder = MeshIdentity(), downloader = MeshIdentity()
        let seederCredential = try join(seeder, coordinator, holding: true)
        let downloaderCredential = try join(downloader, coordinator, holding: false)
        let ticket = try ticket(coordinator, for: downloaderCredential, from: seeder)

        // Cumulative receipts: the coordinator credits only the growth, once.
        let first = try coordinator.submitReceipts(.init(receipts: [try item(ticket, seeder, by: downloader, bytes: 1 << 30, sequence: 1)]),
                                                   credential: seederCredential)
        #expect(first.verdicts == [.init(bytes: 1 << 30, credits: 2, refused: nil)], "a sole seeder: rarity 1 + 1/1")
        let second = try coordinator.submitReceipts(.init(receipts: [try item(ticket, seeder, by: downloader, bytes: 3 << 29, sequence: 2)]),
                                                    credential: seederCredential)
        #expect(second.verdicts == [.init(bytes: 1 << 29, credits: 1, refused: nil)])
        var balance = try coordinator.credits(of: seeder.id)
        #expect(balance.credits == 0 && balance.pendingCredits == 3 && balance.bytesPending == 3 << 29, "held: the downloader does not list the blob")

        var listing = Heartbeat(agentId: downloader.id, platform: "linux", freeMemoryMB: 1, address: coordinator.agentRows().first { $0.heartbeat.agentId == downloader.id }!.heartbeat.address,
                                activeModel: nil, activeModelParamSize: nil, modelSwapInProgress: false, currentLoad: 0,
                                installedModels: [.init(name: "big:q4", sha256: blob, sizeBytes: size)])
        listing.seeding = SeedingPolicy(maximumUploads: 4, bytesPerSecond: nil)
        try coordinator.heartbeat(listing, credential: downloaderCredential)
        balance = try coordinator.credits(of: seeder.id)
        #expect(balance.credits == 3 && balance.pendingCredits == 0 && balance.bytesCredited == 3 << 29)
        #expect(try coordinator.credits(of: downloader.id).credits == 0, "downloading earns nothing")

        // With two complete seeders now, a third agent's ticket carries rarity 1.5.
        let third = MeshIdentity()
        let thirdCredential = try join(third, coordinator, holding: false)
        let rarer = try self.ticket(coordinator, for: thirdCredential, from: seeder)
        let verdict = try coordinator.submitReceipts(.init(receipts: [try item(rarer, seeder, by: third, bytes: 1 << 30, sequence: 1)]),
                                                     credential: seederCredential)
        #expect(verdict.verdicts == [.init(bytes: 1 << 30, credits: 1.5, refused: nil)])
        #expect(coordinator.stats.receipts == 3 && coordinator.stats.creditsMinted == 4.5)
    }

    @Test func forgedReplayedInflatedAndSelfDealtReceiptsAreRefusedAndCounted() throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let seeder = MeshIdentity(), downloader = MeshIdentity(), partner = MeshIdentity(), stranger = MeshIdentity()
        let coordinator = try coordinator { $0.credits.ownerGroups = [[seeder.id, partner.id]] }
        let seederCredential = try join(seeder, coordinator, holding: true)
        let downloaderCredential = try join(downloader, coordinator, holding: false)
        let partnerCredential = try join(partner, coordinator, holding: false)
        let strangerCredential = try join(stranger, coordinator, holding: false)
        let ticket = try ticket(coordinator, for: downloaderCredential, from: seeder)
        func submit(_ items: [ReceiptSubmission.Item], as credential: String? = nil) throws -> [String?] {
            try coordinator.submitReceipts(.init(receipts: items), credential: credential ?? seederCredential).verdicts.map(\.refused)
        }

        let honest = try item(ticket, seeder, by: downloader, bytes: 1 << 20, sequence: 1)
        #expect(try submit([honest]) == [nil])
        #expect(try submit([honest]) == ["replayed"], "the same receipt again")
        #expect(try submit([try item(ticket, seeder, by: downloader, bytes: 2 << 20, sequence: 1)]) == ["replayed"], "an old sequence")

        // The seeder raises the count of the downloader's receipt: the signature no longer holds.
        var raised = try item(ticket, seeder, by: downloader, bytes: 2 << 20, sequence: 2)
        raised.receipt.verifiedBytes = 1 << 30
        // Or signs one itself, with its own key in the downloader's place, or under its own name.
        var selfSigned = try item(ticket, seeder, by: seeder, bytes: 1 << 30, sequence: 3)
        let ownName = selfSigned
        selfSigned.receipt.downloader = downloader.id
        #expect(try submit([raised, selfSigned, ownName]) == ["badSignature", "badSignature", "otherTicket"])
        // More bytes than the blob has, signed by a greedy downloader.
        #expect(try submit([try item(ticket, seeder, by: downloader, bytes: size + 1, sequence: 4)]) == ["overclaim"])
        // Someone else's ticket, a ticket of another coordinator, a made-up one.
        #expect(try submit([honest], as: strangerCredential) == ["notYourTicket"])
        let elsewhere = try Coordinator(directory: directory + "-other")
        defer { try? FileManager.default.removeItem(atPath: directory + "-other") }
        let foreign = try SeederTicket(coordinatorId: elsewhere.id, downloader: downloader.id, seeder: seeder.id, sha256: blob,
                                       sizeBytes: size, seeders: 1, expires: Date().addingTimeInterval(60)).encoded(signedBy: elsewhere.identity)
        #expect(try submit([try item(foreign, seeder, by: downloader, bytes: 1 << 20, sequence: 1)]) == ["badTicket"])
        // The partner is the seeder's other device: it earns the seeder nothing.
        let partnerTicket = try self.ticket(coordinator, for: partnerCredential, from: seeder)
        #expect(try submit([try item(partnerTicket, seeder, by: partner, bytes: 1 << 30, sequence: 1)]) == ["selfDealing"])
        // A receipt after its ticket's grace period.
        let late = Date().addingTimeInterval(Coordinator.ticketLifetime + 86_400 + 1)
        #expect(try coordinator.submitReceipts(.init(receipts: [try item(ticket, seeder, by: downloader, bytes: 3 << 20, sequence: 9)]),
                                               credential: try join(seeder, coordinator, holding: true, at: late), at: late)
            .verdicts.map(\.refused) == ["ticketTooOld"])
        #expect(coordinator.stats.receiptsRefused == ["replayed": 2, "badSignature": 2, "otherTicket": 1, "overclaim": 1, "notYourTicket": 1,
                                                      "badTicket": 1, "selfDealing": 1, "ticketTooOld": 1])
        #expect(try coordinator.credits(of: seeder.id).bytesPending == 1 << 20, "only the honest megabyte")
        #expect(throws: APIError.self) { try coordinator.submitReceipts(.init(receipts: [honest]), credential: nil) }
        #expect(throws: APIError.self) { try coordinator.credits(of: "not an id") }
    }

    @Test func aDownloadIsCreditedAtMostItsSizeAndASeederAtMostItsDailyCap() throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let coordinator = try coordinator { $0.credits.dailyCreditCap = 10 }
        let seeder = MeshIdentity(), other = MeshIdentity(), downloader = MeshIdentity()
        let seederCredential = try join(seeder, coordinator, holding: true)
        let otherCredential = try join(other, coordinator, holding: true)
        let downloaderCredential = try join(downloader, coordinator, holding: false)
        // Two seeders (rarity 1.5) each claim two thirds of the blob for one downloader.
        let first = try ticket(coordinator, for: downloaderCredential, from: seeder)
        let second = try ticket(coordinator, for: downloaderCredential, from: other)
        let part = size / 3 * 2
        let a = try coordinator.submitReceipts(.init(receipts: [try item(first, seeder, by: downloader, bytes: part, sequence: 1)]), credential: seederCredential)
        let b = try coordinator.submitReceipts(.init(receipts: [try item(second, other, by: downloader, bytes: part, sequence: 1)]), credential: otherCredential)
        #expect(a.verdicts[0].refused == nil && a.verdicts[0].bytes == part)
        #expect(b.verdicts[0].refused == "downloadCap" && b.verdicts[0].bytes == size - part, "the download is credited its size in all")
        // Downloading it again the next day earns the seeder nothing more.
        let tomorrow = Date().addingTimeInterval(86_400)
        let seederTomorrow = try join(seeder, coordinator, holding: true, at: tomorrow)
        let again = try ticket(coordinator, for: try join(downloader, coordinator, holding: false, at: tomorrow), from: seeder, at: tomorrow)
        let repeated = try coordinator.submitReceipts(.init(receipts: [try item(again, seeder, by: downloader, bytes: size, sequence: 1)]),
                                                      credential: seederTomorrow, at: tomorrow)
        #expect(repeated.verdicts[0].refused == "downloadCap" && repeated.verdicts[0].bytes == 0)

        // Many downloaders: the seeder's mint stops at its daily cap (10 credits = 6.67 GiB at 1.5).
        var minted = 0.0
        for _ in 0..<4 {
            let fresh = MeshIdentity()
            let credential = try join(fresh, coordinator, holding: false)
            let verdict = try coordinator.submitReceipts(.init(receipts: [try item(try ticket(coordinator, for: credential, from: seeder), seeder, by: fresh, bytes: size, sequence: 1)]),
                                                         credential: seederCredential)
            minted += verdict.verdicts[0].credits
        }
        #expect(abs(a.verdicts[0].credits + minted - 10) < 1e-6, "capped at 10 a day: \(a.verdicts[0].credits) + \(minted)")
        #expect(coordinator.stats.receiptsRefused["dailyCap"] ?? 0 >= 1)
    }

    @Test func aSeederReportedByTwoDownloadersIsBannedAndOneReporterCannotBanIt() async throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let coordinator = try coordinator()
        let liar = MeshIdentity(), honest = MeshIdentity(), first = MeshIdentity(), second = MeshIdentity()
        let liarCredential = try join(liar, coordinator, holding: true)
        _ = try join(honest, coordinator, holding: true)
        let firstCredential = try join(first, coordinator, holding: false)
        let secondCredential = try join(second, coordinator, holding: false)

        let firstTicket = try ticket(coordinator, for: firstCredential, from: liar)
        #expect(try await coordinator.report(.init(ticket: firstTicket, piece: 5), credential: firstCredential) == false)
        #expect(try await coordinator.report(.init(ticket: firstTicket, piece: 6), credential: firstCredential) == false, "one reporter, twice")
        // A report with someone else's ticket, or no credential, is refused.
        await #expect(throws: APIError.self) { try await coordinator.report(.init(ticket: firstTicket, piece: 5), credential: secondCredential) }
        await #expect(throws: APIError.self) { try await coordinator.report(.init(ticket: firstTicket, piece: 5), credential: nil) }
        #expect(try coordinator.seeders(of: blob, credential: secondCredential, limit: 32).seeders.contains { $0.agentId == liar.id })

        let secondTicket = try ticket(coordinator, for: secondCredential, from: liar)
        #expect(try await coordinator.report(.init(ticket: secondTicket, piece: 5), credential: secondCredential) == true)
        let answer = try coordinator.seeders(of: blob, credential: secondCredential, limit: 32)
        #expect(answer.seeders.filter(\.complete).map(\.agentId) == [honest.id] && !answer.seeders.contains { $0.agentId == liar.id },
                "the liar is no longer handed out")
        // Its receipts earn nothing while banned.
        let late = try SeederTicket(coordinatorId: coordinator.id, downloader: first.id, seeder: liar.id, sha256: blob, sizeBytes: size,
                                    seeders: 2, expires: Date().addingTimeInterval(60)).encoded(signedBy: coordinator.identity)
        let verdict = try coordinator.submitReceipts(.init(receipts: [try item(late, liar, by: first, bytes: 1 << 20, sequence: 1)]),
                                                     credential: liarCredential)
        #expect(verdict.verdicts.map(\.refused) == ["banned"])
        #expect(coordinator.stats.reports == 3 && coordinator.stats.seedersBanned == 1 && coordinator.stats.reportsRefused["notYourTicket"] == 1)

        // The ban survives a restart.
        let reopened = try Coordinator(directory: directory)
        #expect(reopened.isBanned(liar.id, at: Date()))
    }

    /// A federation peer passes on its agents' reports of this coordinator's seeders: they
    /// count toward the ban only with a ticket this coordinator issued to that agent at that
    /// peer's request, signed by the peer, once.
    @Test func aFederationPeersReportsCountOnlyOnTicketsItsOwnAgentsWereIssued() throws {
        defer { try? FileManager.default.removeItem(atPath: directory); try? FileManager.default.removeItem(atPath: directory + "-near") }
        let near = try Coordinator(directory: directory + "-near")
        let nearPeer = try CoordinatorPeer(url: "http://near.invalid", publicKey: near.publicKey)
        let far = try coordinator { $0.peers = [nearPeer] }
        let liar = MeshIdentity(), local = MeshIdentity()
        _ = try join(liar, far, holding: true)
        let localCredential = try join(local, far, holding: false)
        let (first, second) = (String(repeating: "1", count: 16), String(repeating: "2", count: 16))
        func ticket(for downloader: String) throws -> String {
            let request = try FederatedSeedersRequest(coordinator: near.identity, downloader: downloader, sha256: blob, size: nil, limit: 4)
            let answer = try far.federatedSeeders(request)
            return try #require(answer.seeders.first { $0.agentId == liar.id }?.ticket)
        }
        func status(_ report: FederatedReport) -> Int? {
            do { _ = try far.federatedReport(report); return 200 } catch { return error.status.code }
        }
        let (firstTicket, secondTicket) = (try ticket(for: first), try ticket(for: second))

        let honest = try FederatedReport(coordinator: near.identity, reporter: first, report: .init(ticket: firstTicket, piece: 5))
        #expect(try far.federatedReport(honest) == false, "one reporter does not ban")
        #expect(status(honest) == 409, "a replay")
        var forged = try FederatedReport(coordinator: near.identity, reporter: second, report: .init(ticket: firstTicket, piece: 5))
        #expect(status(forged) == 403, "the ticket was issued to another agent")
        forged.reporter = first
        #expect(status(forged) == 403, "changed after signing")
        #expect(status(try FederatedReport(coordinator: MeshIdentity(), reporter: second, report: .init(ticket: secondTicket, piece: 5))) == 403,
                "an outsider")
        let localTicket = try self.ticket(far, for: localCredential, from: liar)
        let onLocalTicket = try FederatedReport(coordinator: near.identity, reporter: local.id, report: .init(ticket: localTicket, piece: 5))
        #expect(status(onLocalTicket) == 403, "a ticket the far coordinator issued to its own agent")
        #expect(far.stats.reports == 1 && far.stats.seedersBanned == 0)

        #expect(try far.federatedReport(FederatedReport(coordinator: near.identity, reporter: second, report: .init(ticket: secondTicket, piece: 7))))
        #expect(far.isBanned(liar.id, at: Date()) && far.stats.seedersBanned == 1)
        let refused = far.stats.federationRefused.merging(far.stats.reportsRefused) { $0 + $1 }
        #expect(refused["replayed"] == 1 && refused["forged"] == 1 && refused["notAPeer"] == 1 && refused["notYourTicket"] == 2, "\(refused)")
    }

    @Test func agentsStillDownloadingAreHandedOutAfterTheHoldersForAsLongAsATicketLasts() throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let coordinator = try coordinator { $0.credentialLifetime = .seconds(7_200) }
        let holder = MeshIdentity(), first = MeshIdentity(), second = MeshIdentity(), leecher = MeshIdentity()
        let holderCredential = try join(holder, coordinator, holding: true)
        let firstCredential = try join(first, coordinator, holding: false)
        let secondCredential = try join(second, coordinator, holding: false)
        let quiet = Heartbeat(agentId: leecher.id, platform: "linux", freeMemoryMB: 1024, address: "http://10.0.0.9:4302",
                              activeModel: nil, activeModelParamSize: nil, modelSwapInProgress: false, currentLoad: 0, installedModels: [])
        let leecherCredential = try coordinator.register(AgentRegistration(identity: leecher, challenge: coordinator.challenge(), heartbeat: quiet,
                                                                           joinToken: nil)).credential

        let toFirst = try coordinator.seeders(of: blob, credential: firstCredential, limit: 32)
        #expect(toFirst.seeders.map(\.agentId) == [holder.id] && toFirst.seeders.map(\.complete) == [true])
        _ = try coordinator.seeders(of: blob, credential: leecherCredential, limit: 32)
        // The first asker seeds, so it is downloading the blob now; the leecher does not seed.
        let toSecond = try coordinator.seeders(of: blob, credential: secondCredential, limit: 32)
        #expect(toSecond.seeders.map(\.agentId) == [holder.id, first.id] && toSecond.seeders.map(\.complete) == [true, false])
        let partialTicket = try #require(try SeederTicket.verified(toSecond.seeders[1].ticket, coordinatorKey: coordinator.publicKey).get())
        #expect(partialTicket.seeder == first.id && partialTicket.downloader == second.id)
        #expect(partialTicket.sizeBytes == size && partialTicket.seeders == 1, "a partial seeder's ticket: the holder's size, one complete seeder")

        // A ticket's lifetime later, an asker that did not ask again is no longer downloading.
        let later = Date().addingTimeInterval(Coordinator.ticketLifetime + 60)
        for (agent, credential) in [(holder, holderCredential), (first, firstCredential), (second, secondCredential)] {
            let row = try #require(coordinator.agentRows().first { $0.heartbeat.agentId == agent.id })
            try coordinator.heartbeat(row.heartbeat, credential: credential, at: later)
        }
        try coordinator.heartbeat(quiet, credential: leecherCredential, at: later)
        let afterwards = try coordinator.seeders(of: blob, credential: leecherCredential, limit: 32, at: later)
        #expect(afterwards.seeders.map(\.agentId) == [holder.id], "the askers' entries expired: \(afterwards.seeders.map(\.agentId))")

        // With no holder, a size the asker gives is what the tickets carry; without one nobody is noted.
        let other = String(repeating: "cd", count: 32)
        _ = try coordinator.seeders(of: other, credential: firstCredential, limit: 32, at: later)
        #expect(try coordinator.seeders(of: other, credential: secondCredential, limit: 32, at: later).seeders.isEmpty)
        _ = try coordinator.seeders(of: other, credential: firstCredential, size: 12_345, limit: 32, at: later)
        let sized = try coordinator.seeders(of: other, credential: secondCredential, limit: 32, at: later)
        #expect(sized.seeders.map(\.agentId) == [first.id])
        #expect(try SeederTicket.verified(sized.seeders[0].ticket, coordinatorKey: coordinator.publicKey).get().sizeBytes == 12_345)
    }
}
