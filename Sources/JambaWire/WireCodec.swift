// WireCodec: size-limited serialization and parsing of jamba.v1 messages, with errors mapped to WireError.
import Foundation
import SwiftProtobuf

/// Serializes and parses whole messages (normally the envelopes `Jamba_V1_WorkerToCoordinator`,
/// `Jamba_V1_CoordinatorToWorker`, `Jamba_V1_ClientRequest`, `Jamba_V1_ClientReply`).
///
/// Every call takes a byte limit so that neither side builds or accepts a message the other would
/// refuse; the transport's own limit (ZeroMQ `MAXMSGSIZE`) should be set to the same value so an
/// oversized message is stopped before it is even buffered. All SwiftProtobuf errors become
/// `WireError.malformed`, so callers handle exactly one error type.
public enum WireCodec {
    /// Default limit for one serialized message: an expert batch of a large prefill chunk fits, a
    /// runaway or hostile length prefix does not.
    public static let defaultMaxMessageBytes = 256 << 20

    /// Options used for every parse. The depth limit guards against stack exhaustion from deeply nested
    /// garbage; no jamba.v1 message nests deeper than 6.
    public static var decodingOptions: BinaryDecodingOptions {
        var options = BinaryDecodingOptions()
        options.messageDepthLimit = 32
        return options
    }

    /// `message` serialized to `[UInt8]` (what ZeroMQ frames are made of).
    public static func serialize<M: SwiftProtobuf.Message>(_ message: M,
                                                          maxBytes: Int = defaultMaxMessageBytes) throws(WireError) -> [UInt8] {
        try serialize(message, as: [UInt8].self, maxBytes: maxBytes)
    }

    /// `message` serialized into any contiguous byte container, e.g. a buffer that a transport can send
    /// without copying (anything conforming to `SwiftProtobufContiguousBytes`).
    public static func serialize<M: SwiftProtobuf.Message, Bytes: SwiftProtobufContiguousBytes>(
        _ message: M, as type: Bytes.Type, maxBytes: Int = defaultMaxMessageBytes
    ) throws(WireError) -> Bytes {
        let bytes: Bytes
        do {
            bytes = try message.serializedBytes()
        } catch {
            // Only possible for proto2 required fields or > 2 GiB messages; jamba.v1 has no required fields.
            throw .malformed("cannot serialize \(M.protoMessageName): \(error)")
        }
        guard bytes.count <= maxBytes else {
            throw .oversized(field: M.protoMessageName, bytes: bytes.count, limit: maxBytes)
        }
        return bytes
    }

    /// Parses `bytes` as `M`, rejecting anything over `maxBytes` before decoding starts.
    public static func parse<M: SwiftProtobuf.Message, Bytes: SwiftProtobufContiguousBytes>(
        _ type: M.Type, from bytes: Bytes, maxBytes: Int = defaultMaxMessageBytes
    ) throws(WireError) -> M {
        guard bytes.count <= maxBytes else {
            throw .oversized(field: M.protoMessageName, bytes: bytes.count, limit: maxBytes)
        }
        do {
            return try M(serializedBytes: bytes, options: decodingOptions)
        } catch let error as BinaryDecodingError {
            throw .malformed("\(M.protoMessageName): \(describe(error)) (\(bytes.count) bytes)")
        } catch {
            throw .malformed("\(M.protoMessageName): \(error) (\(bytes.count) bytes)")
        }
    }

    private static func describe(_ error: BinaryDecodingError) -> String {
        switch error {
        case .truncated: "truncated"
        case .trailingGarbage: "trailing garbage"
        case .invalidUTF8: "invalid UTF-8 in a string field"
        case .malformedProtobuf: "not a valid protobuf encoding"
        case .missingRequiredFields: "missing required fields"
        case .messageDepthLimit: "nested too deeply"
        default: "\(error)"
        }
    }
}

// MARK: Envelope conveniences

/// A top-level jamba.v1 message whose one `oneof` must be set: parsing checks that (an empty envelope, or one
/// from a newer protocol whose arm we do not know, is `malformed` with a clear message, never a silent no-op).
public protocol WireEnvelope: SwiftProtobuf.Message {
    /// Whether the envelope's oneof carries something, and what the oneof is called (for the error message).
    var hasPayload: Bool { get }
    static var payloadName: String { get }
}

extension WireEnvelope {
    public static func parse<Bytes: SwiftProtobufContiguousBytes>(
        _ bytes: Bytes, maxBytes: Int = WireCodec.defaultMaxMessageBytes
    ) throws(WireError) -> Self {
        let envelope = try WireCodec.parse(Self.self, from: bytes, maxBytes: maxBytes)
        guard envelope.hasPayload else { throw .malformed("\(protoMessageName): no \(payloadName) set") }
        return envelope
    }

    public func serialized(maxBytes: Int = WireCodec.defaultMaxMessageBytes) throws(WireError) -> [UInt8] {
        try WireCodec.serialize(self, maxBytes: maxBytes)
    }
}

extension Jamba_V1_WorkerToCoordinator: WireEnvelope {
    public var hasPayload: Bool { msg != nil }
    public static var payloadName: String { "message" }
}

extension Jamba_V1_CoordinatorToWorker: WireEnvelope {
    public var hasPayload: Bool { msg != nil }
    public static var payloadName: String { "message" }
}

extension Jamba_V1_ClientRequest: WireEnvelope {
    public var hasPayload: Bool { request != nil }
    public static var payloadName: String { "request" }
}

extension Jamba_V1_ClientReply: WireEnvelope {
    public var hasPayload: Bool { reply != nil }
    public static var payloadName: String { "reply" }
}
