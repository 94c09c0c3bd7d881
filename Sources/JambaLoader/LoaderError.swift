// LoaderError: every way reading a checkpoint can fail, each naming the file and the tensor involved.

/// Errors of the checkpoint loader. Each case carries the file (and tensor, where there is one) so an operator
/// can tell which of several shards is broken without a debugger.
public enum LoaderError: Error, CustomStringConvertible, Equatable {
    case fileNotFound(path: String)
    case cannotOpen(path: String, errno: Int32)
    case truncated(path: String, detail: String)
    case badHeader(path: String, detail: String)
    case unknownDType(path: String, tensor: String, dtype: String)
    case badTensorEntry(path: String, tensor: String, detail: String)
    case overlappingTensors(path: String, first: String, second: String)
    case missingTensor(name: String, searched: String)
    case shapeMismatch(path: String, tensor: String, expected: [Int], actual: [Int])
    case badIndex(path: String, detail: String)

    public var description: String {
        switch self {
        case let .fileNotFound(path): "checkpoint file not found: \(path)"
        case let .cannotOpen(path, e): "cannot open \(path): errno \(e)"
        case let .truncated(path, detail): "truncated safetensors file \(path): \(detail)"
        case let .badHeader(path, detail): "bad safetensors header in \(path): \(detail)"
        case let .unknownDType(path, tensor, dtype): "tensor '\(tensor)' in \(path) has unsupported dtype '\(dtype)' (supported: F32, BF16, F16)"
        case let .badTensorEntry(path, tensor, detail): "tensor '\(tensor)' in \(path): \(detail)"
        case let .overlappingTensors(path, a, b): "tensors '\(a)' and '\(b)' in \(path) overlap"
        case let .missingTensor(name, searched): "tensor '\(name)' not found in \(searched)"
        case let .shapeMismatch(path, tensor, expected, actual): "tensor '\(tensor)' in \(path) has shape \(actual), expected \(expected) from config.json"
        case let .badIndex(path, detail): "bad shard index \(path): \(detail)"
        }
    }
}
