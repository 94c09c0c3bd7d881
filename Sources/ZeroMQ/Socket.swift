// Socket: a libzmq socket owned by one thread: creation, endpoints and options.
import CZeroMQ
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The socket patterns the cluster uses. The raw values are libzmq's `ZMQ_*` type constants.
public enum SocketType: Int32, Sendable, CaseIterable {
    case pair = 0   // ZMQ_PAIR
    case pub = 1    // ZMQ_PUB
    case sub = 2    // ZMQ_SUB
    case req = 3    // ZMQ_REQ
    case rep = 4    // ZMQ_REP
    case dealer = 5 // ZMQ_DEALER
    case router = 6 // ZMQ_ROUTER
    case pull = 7   // ZMQ_PULL
    case push = 8   // ZMQ_PUSH
}

/// Options this wrapper knows how to set; each maps to one `zmq_setsockopt`.
public enum SocketOption: Sendable, Equatable {
    /// How long `close` lets pending outbound messages drain; 0 drops them, -1 waits forever.
    case linger(milliseconds: Int32)
    /// ROUTER: fail a send to an unknown routing id with EHOSTUNREACH instead of dropping it silently.
    case routerMandatory(Bool)
    /// Largest inbound message accepted, in bytes; a peer sending more is disconnected. -1 = no limit.
    case maxMessageSize(Int64)
    case sendHighWaterMark(Int32)
    case receiveHighWaterMark(Int32)
    /// Blocking receive gives up after this many ms (EAGAIN); -1 = wait forever.
    case receiveTimeout(milliseconds: Int32)
    case sendTimeout(milliseconds: Int32)
    /// The identity a DEALER/REQ presents to a ROUTER (1...255 bytes, must not start with 0). Set before connect.
    case routingID([UInt8])
    /// ZMTP heartbeats: a PING every interval, connection dropped if nothing arrives within timeout.
    case heartbeatInterval(milliseconds: Int32)
    case heartbeatTimeout(milliseconds: Int32)
    /// Queue messages only to completed connections (a DEALER won't buffer for a peer not yet there).
    case immediate(Bool)
    /// SO_KEEPALIVE on TCP connections: -1 = OS default, 0 = off, 1 = on.
    case tcpKeepalive(Int32)
    /// SUB: receive messages starting with this prefix (empty = everything).
    case subscribe([UInt8])
    case unsubscribe([UInt8])
}

/// A libzmq socket.
///
/// Deliberately not `Sendable`: libzmq sockets are not thread-safe, so a socket is created, used and
/// closed by the one thread (normally a daemon's poll loop) that owns it. Other threads talk to that
/// loop through a `Mailbox` and wake it with a `Wakeup` instead of touching the socket.
public final class Socket {
    public let type: SocketType
    /// Kept so the context outlives every socket (libzmq requires it).
    public let context: ZMQContext
    var handle: UnsafeMutableRawPointer?

    /// A new socket. LINGER defaults to 0 here (libzmq's default, -1, makes closing a socket with an
    /// unreachable peer hang the context's termination forever); set `.linger` if unsent data matters.
    public init(_ context: ZMQContext, type: SocketType, linger: Int32 = 0) throws(ZMQError) {
        guard let h = zmq_socket(context.handle, type.rawValue) else {
            throw ZMQError.last("zmq_socket(\(type))")
        }
        self.type = type
        self.context = context
        self.handle = h
        try set(.linger(milliseconds: linger))
    }

    deinit { close() }

    /// Closes the socket now (idempotent). Later calls on it throw ENOTSOCK.
    public func close() {
        if let h = handle {
            zmq_close(h)
            handle = nil
        }
    }

    public var isClosed: Bool { handle == nil }

    func liveHandle(_ call: @autoclosure () -> String) throws(ZMQError) -> UnsafeMutableRawPointer {
        guard let h = handle else { throw ZMQError(errno: ENOTSOCK, call: call()) }
        return h
    }

    // MARK: Endpoints

    /// Binds to `endpoint`, e.g. "tcp://127.0.0.1:*" (then read `lastEndpoint` for the port) or "inproc://x".
    public func bind(_ endpoint: String) throws(ZMQError) {
        let h = try liveHandle("zmq_bind(\"\(endpoint)\")")
        _ = try retryingEINTR("zmq_bind(\"\(endpoint)\")") { zmq_bind(h, endpoint) }
    }

    /// Starts connecting to `endpoint`; libzmq connects (and reconnects) in the background.
    public func connect(_ endpoint: String) throws(ZMQError) {
        let h = try liveHandle("zmq_connect(\"\(endpoint)\")")
        _ = try retryingEINTR("zmq_connect(\"\(endpoint)\")") { zmq_connect(h, endpoint) }
    }

    public func unbind(_ endpoint: String) throws(ZMQError) {
        let h = try liveHandle("zmq_unbind(\"\(endpoint)\")")
        _ = try retryingEINTR("zmq_unbind(\"\(endpoint)\")") { zmq_unbind(h, endpoint) }
    }

    public func disconnect(_ endpoint: String) throws(ZMQError) {
        let h = try liveHandle("zmq_disconnect(\"\(endpoint)\")")
        _ = try retryingEINTR("zmq_disconnect(\"\(endpoint)\")") { zmq_disconnect(h, endpoint) }
    }

    /// The endpoint of the last bind/connect with wildcards resolved ("tcp://127.0.0.1:41234").
    public var lastEndpoint: String {
        get throws(ZMQError) {
            let bytes = try bytesOption(ZMQ_LAST_ENDPOINT, capacity: 1024, name: "ZMQ_LAST_ENDPOINT")
            // libzmq includes the terminating NUL in the reported length.
            return String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
        }
    }

    // MARK: Options

    public func set(_ option: SocketOption) throws(ZMQError) {
        switch option {
        case .linger(let ms): try setInt32(ZMQ_LINGER, ms, name: "ZMQ_LINGER")
        case .routerMandatory(let on): try setInt32(ZMQ_ROUTER_MANDATORY, on ? 1 : 0, name: "ZMQ_ROUTER_MANDATORY")
        case .maxMessageSize(let n): try setInt64(ZMQ_MAXMSGSIZE, n, name: "ZMQ_MAXMSGSIZE")
        case .sendHighWaterMark(let n): try setInt32(ZMQ_SNDHWM, n, name: "ZMQ_SNDHWM")
        case .receiveHighWaterMark(let n): try setInt32(ZMQ_RCVHWM, n, name: "ZMQ_RCVHWM")
        case .receiveTimeout(let ms): try setInt32(ZMQ_RCVTIMEO, ms, name: "ZMQ_RCVTIMEO")
        case .sendTimeout(let ms): try setInt32(ZMQ_SNDTIMEO, ms, name: "ZMQ_SNDTIMEO")
        case .routingID(let id): try setBytes(ZMQ_ROUTING_ID, id, name: "ZMQ_ROUTING_ID")
        case .heartbeatInterval(let ms): try setInt32(ZMQ_HEARTBEAT_IVL, ms, name: "ZMQ_HEARTBEAT_IVL")
        case .heartbeatTimeout(let ms): try setInt32(ZMQ_HEARTBEAT_TIMEOUT, ms, name: "ZMQ_HEARTBEAT_TIMEOUT")
        case .immediate(let on): try setInt32(ZMQ_IMMEDIATE, on ? 1 : 0, name: "ZMQ_IMMEDIATE")
        case .tcpKeepalive(let mode): try setInt32(ZMQ_TCP_KEEPALIVE, mode, name: "ZMQ_TCP_KEEPALIVE")
        case .subscribe(let prefix): try setBytes(ZMQ_SUBSCRIBE, prefix, name: "ZMQ_SUBSCRIBE")
        case .unsubscribe(let prefix): try setBytes(ZMQ_UNSUBSCRIBE, prefix, name: "ZMQ_UNSUBSCRIBE")
        }
    }

    /// The routing id this socket presents (as set, or the one libzmq generated).
    public var routingID: [UInt8] {
        get throws(ZMQError) { try bytesOption(ZMQ_ROUTING_ID, capacity: 256, name: "ZMQ_ROUTING_ID") }
    }

    /// Any int-valued option by its raw `ZMQ_*` number (e.g. `ZMQ_RCVHWM`, `ZMQ_EVENTS`).
    public func int32Option(_ option: Int32, name: String = "option") throws(ZMQError) -> Int32 {
        var value: Int32 = 0
        var size = MemoryLayout<Int32>.size
        let h = try liveHandle("zmq_getsockopt(\(name))")
        _ = try retryingEINTR("zmq_getsockopt(\(name))") { zmq_getsockopt(h, option, &value, &size) }
        return value
    }

    /// Any int64-valued option by its raw `ZMQ_*` number (e.g. `ZMQ_MAXMSGSIZE`).
    public func int64Option(_ option: Int32, name: String = "option") throws(ZMQError) -> Int64 {
        var value: Int64 = 0
        var size = MemoryLayout<Int64>.size
        let h = try liveHandle("zmq_getsockopt(\(name))")
        _ = try retryingEINTR("zmq_getsockopt(\(name))") { zmq_getsockopt(h, option, &value, &size) }
        return value
    }

    func bytesOption(_ option: Int32, capacity: Int, name: String) throws(ZMQError) -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: capacity)
        var size = capacity
        let h = try liveHandle("zmq_getsockopt(\(name))")
        _ = try retryingEINTR("zmq_getsockopt(\(name))") {
            buffer.withUnsafeMutableBytes { zmq_getsockopt(h, option, $0.baseAddress, &size) }
        }
        return Array(buffer.prefix(min(size, capacity)))
    }

    private func setInt32(_ option: Int32, _ value: Int32, name: String) throws(ZMQError) {
        var v = value
        let h = try liveHandle("zmq_setsockopt(\(name), \(value))")
        _ = try retryingEINTR("zmq_setsockopt(\(name), \(value))") {
            zmq_setsockopt(h, option, &v, MemoryLayout<Int32>.size)
        }
    }

    private func setInt64(_ option: Int32, _ value: Int64, name: String) throws(ZMQError) {
        var v = value
        let h = try liveHandle("zmq_setsockopt(\(name), \(value))")
        _ = try retryingEINTR("zmq_setsockopt(\(name), \(value))") {
            zmq_setsockopt(h, option, &v, MemoryLayout<Int64>.size)
        }
    }

    private func setBytes(_ option: Int32, _ value: [UInt8], name: String) throws(ZMQError) {
        let h = try liveHandle("zmq_setsockopt(\(name), \(value.count) bytes)")
        _ = try retryingEINTR("zmq_setsockopt(\(name), \(value.count) bytes)") {
            value.withUnsafeBytes { zmq_setsockopt(h, option, $0.baseAddress, $0.count) }
        }
    }
}
