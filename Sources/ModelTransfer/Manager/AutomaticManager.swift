import Foundation
import ModelStore

/// Which manager `automatic` chose.
public enum ManagerChoice: String, Sendable, Codable {
    /// The shared store, downloads run by the agent daemon.
    case sharedThroughAgent
    /// The shared store, downloads run by this process.
    case sharedDirect
    /// The app's private store.
    case appLocal
}

/// The shared manager when the shared store is there and allowed, else the app-local one,
/// with the reason. Apps that never call this keep their own behaviour.
public final class AutomaticModelManager: StoreBackedManager {
    public let choice: ManagerChoice
    /// Why, in a sentence for logs and settings screens.
    public let reason: String
    public let chosen: any StoreBackedManager
    public var direct: StoreModelManager { chosen.direct }

    /// Picks a manager for `appID`. The shared store is used unless `DEPOT_SHARED=off` (the
    /// user's or administrator's switch) or it cannot be opened and written; the daemon at
    /// `agentURL` runs the downloads when it answers.
    public static func automatic(appID: String, sharedRoot: String = StoreLocation.defaultRoot(),
                                 agentURL: String? = "http://127.0.0.1:4302", appDirectory: String? = nil,
                                 configuration: ModelDownloader.Configuration = .init(), sleepInhibitor: SleepInhibitor? = nil,
                                 environment: [String: String] = ProcessInfo.processInfo.environment) async throws(TransferError) -> AutomaticModelManager {
        let local = { (why: String) throws(TransferError) -> AutomaticModelManager in
            let manager = try AppLocalManager(appID: appID, directory: appDirectory, configuration: configuration, sleepInhibitor: sleepInhibitor)
            return AutomaticModelManager(choice: .appLocal, reason: "\(why); using the app's own store at \(manager.direct.store.root)", chosen: manager)
        }
        if ["off", "0", "no", "false"].contains(environment["DEPOT_SHARED"]?.lowercased() ?? "") {
            return try local("sharing is switched off (DEPOT_SHARED=\(environment["DEPOT_SHARED"]!))")
        }
        let store: ModelStore
        do throws(StoreError) {
            store = try ModelStore(root: sharedRoot)
        } catch {
            return try local("the shared store at \(sharedRoot) cannot be used (\(error.message))")
        }
        guard access(sharedRoot, W_OK) == 0 else { return try local("the shared store at \(sharedRoot) is read-only for this user") }
        let shared = try await SharedStoreManager.open(store: store, agentURL: agentURL, configuration: configuration,
                                                       sleepInhibitor: sleepInhibitor)
        if let agent = shared.agent {
            return AutomaticModelManager(choice: .sharedThroughAgent,
                                         reason: "using the shared store at \(sharedRoot); the agent at \(agent.base) runs downloads, so they outlive the app",
                                         chosen: shared)
        }
        return AutomaticModelManager(choice: .sharedDirect,
                                     reason: "using the shared store at \(sharedRoot); no agent answers\(agentURL.map { " at \($0)" } ?? ""), so this process downloads",
                                     chosen: shared)
    }

    init(choice: ManagerChoice, reason: String, chosen: any StoreBackedManager) {
        self.choice = choice
        self.reason = reason
        self.chosen = chosen
    }

    public func ensure(_ request: PullRequest) -> ModelDownloadController { chosen.ensure(request) }

    public func shutdown() async {
        if let shared = chosen as? SharedStoreManager { await shared.shutdown() }
        if let local = chosen as? AppLocalManager { await local.shutdown() }
    }
}

extension ModelDownloadManager where Self == AutomaticModelManager {
    /// `let models: some ModelDownloadManager = try await .automatic(appID: "com.example.chat")`
    public static func automatic(appID: String) async throws(TransferError) -> AutomaticModelManager {
        try await AutomaticModelManager.automatic(appID: appID)
    }
}
