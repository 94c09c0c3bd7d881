// JSONValue: a strictly typed JSON tree, so a `true` is never read as 1 nor 1 as `true`.
import Foundation

/// JSON decoded without Foundation's NSNumber bridging (on Linux an NSNumber 1 can cast to `Bool`).
public enum JSONValue: Sendable, Equatable, Decodable {
    case null
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null; return }
        if let b = try? c.decode(Bool.self) { self = .bool(b); return }
        if let i = try? c.decode(Int.self) { self = .int(i); return }
        if let d = try? c.decode(Double.self) { self = .double(d); return }
        if let s = try? c.decode(String.self) { self = .string(s); return }
        if let a = try? c.decode([JSONValue].self) { self = .array(a); return }
        self = .object(try c.decode([String: JSONValue].self))
    }

    /// Parses bytes; nil if they are not JSON.
    public static func parse(_ data: Data) -> JSONValue? {
        try? JSONDecoder().decode(JSONValue.self, from: data)
    }

    public var object: [String: JSONValue]? { if case let .object(o) = self { o } else { nil } }
    public var array: [JSONValue]? { if case let .array(a) = self { a } else { nil } }
    public var string: String? { if case let .string(s) = self { s } else { nil } }
    public var bool: Bool? { if case let .bool(b) = self { b } else { nil } }
    public var isNull: Bool { self == .null }

    /// An integer, also from a double with an integral value (some writers emit 4.0).
    public var int: Int? {
        switch self {
        case let .int(i): i
        case let .double(d): d.rounded() == d && abs(d) < 9e15 ? Int(d) : nil
        default: nil
        }
    }

    public var double: Double? {
        switch self {
        case let .int(i): Double(i)
        case let .double(d): d
        default: nil
        }
    }

    public subscript(key: String) -> JSONValue? { object?[key] }

    /// A short rendering for error messages.
    public var summary: String {
        switch self {
        case .null: "null"
        case let .bool(b): "\(b)"
        case let .int(i): "\(i)"
        case let .double(d): "\(d)"
        case let .string(s): "\"\(s.prefix(40))\""
        case let .array(a): "a list of \(a.count)"
        case .object: "an object"
        }
    }
}
