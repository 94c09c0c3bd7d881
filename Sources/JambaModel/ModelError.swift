// ModelError: errors of config parsing, weight loading and the forward pass, each naming its field or input.

public enum ModelError: Error, CustomStringConvertible, Equatable {
    case configNotFound(path: String)
    case badConfig(path: String, field: String, detail: String)
    case tokenOutOfRange(id: Int, vocabSize: Int)
    case promptTooLong(tokens: Int, limit: Int)
    case emptyPrompt
    case badSampling(parameter: String, detail: String)
    case expertFailure(layer: Int, detail: String)
    case unknownSequence(id: Int)

    public var description: String {
        switch self {
        case let .configNotFound(path): "config.json not found at \(path)"
        case let .badConfig(path, field, detail): "config \(path): field '\(field)': \(detail)"
        case let .tokenOutOfRange(id, v): "token id \(id) is outside the vocabulary [0, \(v))"
        case let .promptTooLong(n, limit): "prompt has \(n) tokens, over the context limit of \(limit)"
        case .emptyPrompt: "the prompt is empty (no tokens)"
        case let .badSampling(p, d): "bad sampling parameter \(p): \(d)"
        case let .expertFailure(layer, detail): "experts of layer \(layer) failed: \(detail)"
        case let .unknownSequence(id): "unknown sequence \(id)"
        }
    }
}
