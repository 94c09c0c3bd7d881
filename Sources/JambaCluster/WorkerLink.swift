// WorkerLink: the coordinator's ROUTER socket to its workers: sends, receives, and waits for expert replies.
import Foundation
import JambaScheduler
import JambaWire
import Logging
import ZeroMQ

/// A message from a worker that is not an awaited expert reply; handled by the coordinator's loop.
struct WorkerMessage {
    let identity: [UInt8]
    let message: Jamba_V1_WorkerToCoordinator
}

/// Owns the worker-facing socket and the worker registry. Lives on the coordinator's thread only.
final class WorkerLink {
    let socket: Socket
    var registry: WorkerRegistry
    let log: Logger
    let maxMessageBytes: Int
    /// Replies that arrived for requests being awaited, by request id.
    private var replies: [UInt64: (from: WorkerID, reply: Jamba_V1_ExpertBatchReply)] = [:]
    private var awaited = Set<UInt64>()
    private var nextRequestID: UInt64 = 1
    /// Control messages (register, ready, errors) received while a step was waiting; handled between steps.
    private(set) var deferred: [WorkerMessage] = []
    /// Bytes of expert replies received (for the status report's time and volume accounting).
    private(set) var replyBytes: UInt64 = 0

    init(socket: Socket, heartbeatTimeout: Double, log: Logger, maxMessageBytes: Int) {
        self.socket = socket
        registry = WorkerRegistry(heartbeatTimeout: heartbeatTimeout)
        self.log = log
        self.maxMessageBytes = maxMessageBytes
    }

    func takeDeferred() -> [WorkerMessage] {
        defer { deferred.removeAll() }
        return deferred
    }

    /// Sends to a worker. A ROUTER with ROUTER_MANDATORY fails with EHOSTUNREACH when the peer is gone:
    /// that worker is marked lost at once instead of waiting for its heartbeats to stop.
    /// Returns the bytes sent, or nil when the worker could not be reached.
    @discardableResult
    func send(_ msg: Jamba_V1_CoordinatorToWorker.OneOf_Msg, to identity: [UInt8]) -> Int? {
        guard let bytes = encode(msg) else { return nil }
        return send(encoded: bytes, to: identity)
    }

    /// A message to a worker as the bytes `send(encoded:to:)` takes; nil (logged) if it cannot be encoded.
    func encode(_ msg: Jamba_V1_CoordinatorToWorker.OneOf_Msg) -> [UInt8]? {
        var env = Jamba_V1_CoordinatorToWorker()
        env.msg = msg
        do {
            return try env.serialized(maxBytes: maxMessageBytes)
        } catch {
            log.error("message to worker could not be encoded", metadata: ["error": "\(error)"])
            return nil
        }
    }

    /// Sends bytes made by `encode`. Returns their count, or nil when the worker could not be reached.
    func send(encoded bytes: [UInt8], to identity: [UInt8]) -> Int? {
        do {
            try socket.send([identity, bytes])
            return bytes.count
        } catch where error.isHostUnreachable {
            let id = WorkerRegistry.id(of: identity)
            if registry[id]?.isUp == true {
                log.warning("worker unreachable; marking lost", metadata: ["worker": "\(registry[id]?.name ?? "?")"])
                registry.markLost(id)
            }
            return nil
        } catch {
            log.error("send to worker failed", metadata: ["error": "\(error)"])
            return nil
        }
    }

    func newRequestID() -> UInt64 {
        defer { nextRequestID += 1 }
        return nextRequestID
    }

    func await(_ id: UInt64) { awaited.insert(id) }

    func cancelAwait(_ id: UInt64) {
        awaited.remove(id)
        replies[id] = nil
    }

    func takeReply(_ id: UInt64) -> (from: WorkerID, reply: Jamba_V1_ExpertBatchReply)? {
        guard let r = replies.removeValue(forKey: id) else { return nil }
        awaited.remove(id)
        return r
    }

    /// Receives everything waiting on the socket. Heartbeats update the registry here; awaited replies are
    /// kept for `takeReply`; anything else is deferred to the loop. Garbage gets an error reply.
    func drain() {
        while true {
            let frames: [[UInt8]]?
            do { frames = try socket.receiveMultipart(dontWait: true) } catch {
                log.error("receive from workers failed", metadata: ["error": "\(error)"])
                return
            }
            guard let frames else { return }
            handle(frames)
        }
    }

    private func handle(_ frames: [[UInt8]]) {
        guard frames.count == 2, !frames[0].isEmpty else {
            log.warning("dropping worker-side message with \(frames.count) frames")
            if let identity = frames.first, frames.count >= 1 {
                send(.error(Jamba_V1_Error(code: .malformed, message: "expected exactly one frame after the routing id, got \(frames.count - 1)")), to: identity)
            }
            return
        }
        let identity = frames[0]
        let env: Jamba_V1_WorkerToCoordinator
        do {
            env = try Jamba_V1_WorkerToCoordinator.parse(frames[1], maxBytes: maxMessageBytes)
        } catch {
            log.warning("malformed message on the worker endpoint", metadata: ["error": "\(error)"])
            send(.error(error.asProto()), to: identity)
            return
        }
        let id = WorkerRegistry.id(of: identity)
        if registry[id]?.isUp == true { registry[id]?.lastHeard = Date() }
        switch env.msg {
        case .heartbeat(let hb) where registry[id]?.isUp == true:
            // Rows served and busy time are counted from the replies themselves (up to date at every step);
            // the heartbeat's own counters would lag by up to an interval.
            registry[id]?.residentBytes = hb.residentBytes
            var ack = Jamba_V1_HeartbeatAck()
            ack.epoch = registry[id]?.assignedEpoch ?? 0
            send(.heartbeatAck(ack), to: identity)
        case .reply(let r) where awaited.contains(r.requestID):
            replyBytes += UInt64(frames[1].count)
            replies[r.requestID] = (id, r)
        case .reply(let r):
            log.warning("reply to a request not awaited (late or unknown)", metadata: ["request": "\(r.requestID)"])
        default:
            deferred.append(WorkerMessage(identity: identity, message: env))
        }
    }
}
