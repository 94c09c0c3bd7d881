// TokenizerError: the single error type of JambaTokenizer, each case carrying enough context to act on.
import Foundation

/// Everything that can go wrong while loading a tokenizer or decoding ids.
///
/// Loading never traps: a malformed or unsupported file surfaces as one of these cases, with the file path and
/// the JSON field involved so that a user can tell which of several model folders is broken and why.
public enum TokenizerError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The file could not be read at all (missing, permissions, a directory without tokenizer.json).
    case unreadableFile(path: String, reason: String)
    /// The file is not valid JSON, or a field has the wrong JSON type.
    case malformedFile(path: String, field: String, reason: String)
    /// A field the tokenizer cannot work without is absent.
    case missingField(path: String, field: String)
    /// A field is present and well-typed but its value is inconsistent (e.g. a merge naming a token not in vocab).
    case invalidValue(path: String, field: String, reason: String)
    /// A pipeline component of a kind this implementation does not support.
    case unsupportedComponent(path: String, component: String, type: String)
    /// `decode` was asked for an id that has no token.
    case unknownTokenId(id: Int, vocabSize: Int)

    public var description: String {
        switch self {
        case let .unreadableFile(path, reason):
            return "cannot read tokenizer file \(path): \(reason)"
        case let .malformedFile(path, field, reason):
            return "malformed tokenizer file \(path) at field '\(field)': \(reason)"
        case let .missingField(path, field):
            return "tokenizer file \(path) is missing required field '\(field)'"
        case let .invalidValue(path, field, reason):
            return "invalid value in tokenizer file \(path) at field '\(field)': \(reason)"
        case let .unsupportedComponent(path, component, type):
            return "unsupported \(component) type '\(type)' in tokenizer file \(path)"
        case let .unknownTokenId(id, vocabSize):
            return "unknown token id \(id) (vocabulary has ids 0..<\(vocabSize))"
        }
    }
}

extension TokenizerError {
    /// Turns a `DecodingError` from the Codable schema into a `TokenizerError` naming the JSON path.
    ///
    /// Codable reports *where* it failed as a coding path; flattening that into "model.merges[12]" is what makes
    /// the message useful, since the raw `DecodingError` description is long and mentions Swift types instead.
    static func from(decodingError error: Error, path: String) -> TokenizerError {
        guard let error = error as? DecodingError else {
            if let own = error as? TokenizerError { return own }
            return .malformedFile(path: path, field: "<root>", reason: String(describing: error))
        }
        switch error {
        case let .keyNotFound(key, context):
            let field = fieldPath(context.codingPath + [key])
            return .missingField(path: path, field: field)
        case let .typeMismatch(type, context):
            return .malformedFile(path: path, field: fieldPath(context.codingPath),
                                  reason: "expected \(jsonTypeName(type)); \(context.debugDescription)")
        case let .valueNotFound(type, context):
            return .malformedFile(path: path, field: fieldPath(context.codingPath),
                                  reason: "expected \(jsonTypeName(type)) but found null")
        case let .dataCorrupted(context):
            let reason = context.underlyingError.map { String(describing: $0) } ?? context.debugDescription
            return .malformedFile(path: path, field: fieldPath(context.codingPath), reason: reason)
        @unknown default:
            return .malformedFile(path: path, field: "<root>", reason: String(describing: error))
        }
    }

    /// "model.merges[3]" style rendering of a coding path; "<root>" when the failure is the document itself.
    static func fieldPath(_ path: [CodingKey]) -> String {
        var out = ""
        for key in path {
            if let index = key.intValue {
                out += "[\(index)]"
            } else {
                out += out.isEmpty ? key.stringValue : "." + key.stringValue
            }
        }
        return out.isEmpty ? "<root>" : out
    }

    private static func jsonTypeName(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: return "a string"
        case is Int.Type, is Int32.Type, is Int64.Type, is UInt.Type: return "an integer"
        case is Bool.Type: return "a boolean"
        case is Double.Type, is Float.Type: return "a number"
        default:
            let name = String(describing: type)
            if name.hasPrefix("Array") { return "an array" }
            if name.hasPrefix("Dictionary") { return "an object" }
            return "a value of the right shape"
        }
    }
}

/// A coding key built at run time, for the few places the schema walks keys it cannot know statically.
struct AnyCodingKey: CodingKey {
    var stringValue: String
    var intValue: Int?
    init(stringValue: String) { self.stringValue = stringValue; self.intValue = nil }
    init(intValue: Int) { self.stringValue = String(intValue); self.intValue = intValue }
}
