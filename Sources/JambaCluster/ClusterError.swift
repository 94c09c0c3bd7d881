// ClusterError: failures of the coordinator, workers and client, each with the peer or field involved.
import JambaWire

public enum ClusterError: Error, CustomStringConvertible, Equatable {
    case workerLost(worker: String, detail: String)
    case noHolder(layer: Int, expert: Int)
    case timeout(what: String, seconds: Double)
    case unreachable(endpoint: String, seconds: Double)
    case remote(code: String, message: String)
    case protocolViolation(peer: String, detail: String)
    case badArgument(String)

    public var description: String {
        switch self {
        case let .workerLost(w, d): "expert worker '\(w)' lost: \(d)"
        case let .noHolder(l, e): "no live worker holds expert \(e) of layer \(l)"
        case let .timeout(what, s): "\(what) timed out after \(s) s"
        case let .unreachable(ep, s): "coordinator at \(ep) did not answer within \(s) s (is it running? check the endpoint)"
        case let .remote(code, m): "\(m) [\(code)]"
        case let .protocolViolation(p, d): "protocol violation by \(p): \(d)"
        case let .badArgument(m): m
        }
    }

    init(_ e: Jamba_V1_Error) {
        self = .remote(code: "\(e.code)", message: e.message)
    }
}
