import Hummingbird
import NIOCore

/// A request's context on the agent: Hummingbird's, plus who connected, which peer blob
/// serving needs to tell the LAN from the rest of the world.
public struct AgentRequestContext: RequestContext, RemoteAddressRequestContext {
    public var coreContext: CoreRequestContextStorage
    public let remoteAddress: SocketAddress?
    /// As `AgentConfiguration.limits.maximumBodyBytes` by default: chat requests carry images.
    public var maxUploadSize: Int { 64 << 20 }

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress
    }
}
