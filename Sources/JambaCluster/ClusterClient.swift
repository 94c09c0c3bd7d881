// ClusterClient: the client side of the coordinator protocol (submit with streamed events, status, rebalance).
import Foundation
import JambaWire
import ZeroMQ

/// A blocking client over one DEALER socket. Not thread-safe: one client per thread.
public final class ClusterClient {
    private let context: ZMQContext
    private let socket: Socket
    private let poller: Poller
    public let endpoint: String
    /// How long to wait for the coordinator's first answer before calling it unreachable.
    public let timeout: Double
    /// How long a running job may stay silent before the client gives up on it.
    public var idleTimeout: Double = 600
    private var seq: UInt64 = 0

    public init(endpoint: String, timeout: Double = 5) throws {
        self.endpoint = endpoint
        self.timeout = timeout
        context = try ZMQContext()
        socket = try Socket(context, type: .dealer)
        try socket.connect(endpoint)
        poller = Poller()
        _ = try poller.add(socket)
    }

    deinit {
        socket.close()
        context.shutdown()
    }

    private func send(_ body: Jamba_V1_ClientRequest.OneOf_Request) throws -> UInt64 {
        seq += 1
        var r = Jamba_V1_ClientRequest()
        r.clientSeq = seq
        r.request = body
        try socket.send([try r.serialized()])
        return seq
    }

    /// The next reply, or `ClusterError.unreachable` / `.timeout` after `seconds`.
    private func receive(within seconds: Double, what: String, first: Bool) throws -> Jamba_V1_ClientReply {
        let deadline = Date().addingTimeInterval(seconds)
        while true {
            if let frames = try socket.receiveMultipart(dontWait: true) {
                guard let last = frames.last else { continue }
                return try Jamba_V1_ClientReply.parse(last)
            }
            let left = deadline.timeIntervalSinceNow
            guard left > 0 else {
                throw first ? ClusterError.unreachable(endpoint: endpoint, seconds: seconds) : ClusterError.timeout(what: what, seconds: seconds)
            }
            _ = try poller.poll(timeoutMilliseconds: Int(min(left, 0.5) * 1000) + 1)
        }
    }

    public func status(includeExperts: Bool = true) throws -> Jamba_V1_StatusReply {
        var s = Jamba_V1_StatusRequest()
        s.includeExperts = includeExperts
        _ = try send(.status(s))
        let r = try receive(within: timeout, what: "status", first: true)
        switch r.reply {
        case .status(let st): return st
        case .error(let e): throw ClusterError(e)
        default: throw ClusterError.protocolViolation(peer: endpoint, detail: "expected a status reply")
        }
    }

    public func rebalance(dryRun: Bool) throws -> Jamba_V1_RebalanceReply {
        var q = Jamba_V1_RebalanceRequest()
        q.dryRun = dryRun
        _ = try send(.rebalance(q))
        let r = try receive(within: max(timeout, 30), what: "rebalance", first: true)
        switch r.reply {
        case .rebalance(let rb): return rb
        case .error(let e): throw ClusterError(e)
        default: throw ClusterError.protocolViolation(peer: endpoint, detail: "expected a rebalance reply")
        }
    }

    /// Submits a job and calls `onEvent` for each event until the job's final event, which it returns.
    /// A refused job throws the coordinator's error (e.g. INVALID_ARGUMENT naming the bad parameter).
    @discardableResult
    public func submit(_ job: Jamba_V1_SubmitJob, onEvent: (Jamba_V1_JobEvent) throws -> Void) throws -> Jamba_V1_JobFinal {
        _ = try send(.submit(job))
        var first = true
        while true {
            let r = try receive(within: first ? timeout : idleTimeout, what: "job", first: first)
            first = false
            switch r.reply {
            case .event(let ev):
                try onEvent(ev)
                if case .final(let f) = ev.event { return f }
            case .error(let e):
                throw ClusterError(e)
            default:
                continue
            }
        }
    }
}

/// Runs `body(i)` for i in 0..<count, each on its own thread, all at once, and returns when all are done.
///
/// For launching many blocking clients together (benchmarks, tests): `DispatchQueue.concurrentPerform` runs only
/// as many iterations at a time as there are cores, so on a 2-core machine "8 concurrent jobs" would really be
/// 2 at a time (which made the cluster's batch-8 benchmark measure batch 2).
public func runOnThreads(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) {
    let group = DispatchGroup()
    for i in 0..<count {
        group.enter()
        let thread = Thread {
            body(i)
            group.leave()
        }
        thread.start()
    }
    group.wait()
}
