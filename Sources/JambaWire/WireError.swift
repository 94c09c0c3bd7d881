// WireError: the one error type of JambaWire, its mapping to the wire `Error` message, and the protocol version.
import JambaMath

/// Version of the jamba.v1 wire protocol this build speaks, sent in `Register.protocol_version`.
///
/// Bump it only for changes an old peer would misread (a field's meaning or units change, a message is
/// replaced). Adding fields is backward compatible in protobuf and does not bump it.
/// Version 2: `ExpertInput.slice` (a version-1 worker would answer a slice request with the whole expert).
/// Version 3: each token goes to a worker once (`ExpertBatchRequest.tokens`, `ExpertInput.token_rows`) and whole
/// experts come back gated and summed per token (`ExpertBatchReply.combined`).
public let jambaProtocolVersion: UInt32 = 3

/// Everything that can be wrong with bytes or messages received from a peer.
///
/// Every case carries enough context (which field, what was expected, what arrived) to be logged as is
/// and sent back to the peer as a `Jamba_V1_Error` via `asProto(requestID:)`, so that a misbehaving
/// worker or client learns what it did wrong instead of just being dropped.
public enum WireError: Error, Equatable, Sendable, CustomStringConvertible {
    /// `Tensor.dtype` is `DTYPE_UNSPECIFIED` or a value this build does not know (`rawValue` as received).
    case badDType(field: String, rawValue: Int)
    /// The shape has the wrong rank, a negative dimension, or an element count that overflows `Int`.
    case badShape(field: String, shape: [Int64], reason: String)
    /// `raw_data` is not exactly `product(shape) * dtype.byteSize` bytes.
    case lengthMismatch(field: String, shape: [Int64], dtype: DType, expectedBytes: Int, actualBytes: Int)
    /// A tensor or message is larger than the receiver's configured limit (`bytes` is what it would be).
    case oversized(field: String, bytes: Int, limit: Int)
    /// Bytes that do not parse as the expected message (protobuf decoding failed), or a required part of
    /// a message (e.g. an envelope's oneof) is missing.
    case malformed(String)
    /// A well-formed message whose content contradicts what the receiver expects, e.g. a reply whose
    /// experts are not the ones requested, or a duplicated expert id.
    case invalid(field: String, reason: String)
    /// The peer answered with a `Jamba_V1_Error` (re-thrown so callers have a single error path).
    case remote(code: Jamba_V1_ErrorCode, message: String)

    /// The wire error code a peer should receive for this error.
    public var code: Jamba_V1_ErrorCode {
        switch self {
        case .badDType, .badShape, .lengthMismatch: .badTensor
        case .oversized: .oversized
        case .malformed: .malformed
        case .invalid: .invalidArgument
        case .remote(let code, _): code
        }
    }

    public var description: String {
        switch self {
        case let .badDType(field, raw):
            return "\(field): bad dtype \(raw) (expected F32=1, BF16=2 or F16=3)"
        case let .badShape(field, shape, reason):
            return "\(field): bad shape \(shape): \(reason)"
        case let .lengthMismatch(field, shape, dtype, expected, actual):
            return "\(field): raw_data is \(actual) bytes, expected \(expected) for shape \(shape) of \(dtype.rawValue)"
        case let .oversized(field, bytes, limit):
            return "\(field): \(bytes) bytes exceeds the limit of \(limit) bytes"
        case let .malformed(what):
            return "malformed: \(what)"
        case let .invalid(field, reason):
            return "\(field): \(reason)"
        case let .remote(code, message):
            return "peer error \(code): \(message)"
        }
    }

    /// This error as the wire message to send back to the peer that caused it.
    public func asProto(requestID: UInt64 = 0) -> Jamba_V1_Error {
        if case let .remote(code, message) = self {
            return Jamba_V1_Error(code: code, message: message, requestID: requestID)
        }
        return Jamba_V1_Error(code: code, message: description, requestID: requestID)
    }
}

extension Jamba_V1_Error {
    /// Convenience: `Jamba_V1_Error(code: .notReady, message: "loading", retryAfterMs: 200)`.
    public init(code: Jamba_V1_ErrorCode, message: String, requestID: UInt64 = 0, retryAfterMs: UInt32 = 0) {
        self.init()
        self.code = code
        self.message = message
        self.requestID = requestID
        self.retryAfterMs = retryAfterMs
    }

    /// The received error as a `WireError.remote`, to throw into the caller's single error path.
    public var asWireError: WireError { .remote(code: code, message: message) }
}

extension DType {
    /// The engine dtype for a wire dtype; nil for `DTYPE_UNSPECIFIED` and values unknown to this build.
    public init?(wire: Jamba_V1_DType) {
        switch wire {
        case .f32: self = .f32
        case .bf16: self = .bf16
        case .f16: self = .f16
        case .unspecified, .UNRECOGNIZED: return nil
        }
    }

    /// The wire enum value for this dtype.
    public var wire: Jamba_V1_DType {
        switch self {
        case .f32: .f32
        case .bf16: .bf16
        case .f16: .f16
        }
    }
}
