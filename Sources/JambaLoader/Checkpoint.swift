// Checkpoint: a Hugging Face model folder's weights, one safetensors file or shards listed in an index.
import Foundation
import JambaMath

/// The weights of a model folder. Opening reads only headers; `matrix(_:shape:)` decodes one tensor on demand,
/// so a process touches only the tensors it asks for (an expert worker maps only its own experts' bytes).
public final class Checkpoint: @unchecked Sendable {
    // @unchecked: all stored properties are immutable after init; SafeTensorsFile wraps an immutable mapping.
    public let directory: URL
    /// Tensor name → the file holding it.
    private let files: [String: SafeTensorsFile]
    private let fileOf: [String: String]

    public init(directory: URL) throws {
        self.directory = directory
        let fm = FileManager.default
        let indexURL = directory.appendingPathComponent("model.safetensors.index.json")
        let singleURL = directory.appendingPathComponent("model.safetensors")
        var files: [String: SafeTensorsFile] = [:]
        var fileOf: [String: String] = [:]
        if fm.fileExists(atPath: indexURL.path) {
            let map = try Self.readIndex(indexURL)
            for shard in Set(map.values).sorted() {
                guard !shard.contains("/"), !shard.hasPrefix(".") else {
                    throw LoaderError.badIndex(path: indexURL.path, detail: "shard name '\(shard)' must be a plain file name in the model folder")
                }
                files[shard] = try SafeTensorsFile(path: directory.appendingPathComponent(shard).path)
            }
            for (name, shard) in map {
                guard files[shard]?.tensors[name] != nil else {
                    throw LoaderError.missingTensor(name: name, searched: "\(shard) (listed there by \(indexURL.lastPathComponent))")
                }
                fileOf[name] = shard
            }
        } else if fm.fileExists(atPath: singleURL.path) {
            let f = try SafeTensorsFile(path: singleURL.path)
            files["model.safetensors"] = f
            for name in f.tensors.keys { fileOf[name] = "model.safetensors" }
        } else {
            throw LoaderError.fileNotFound(path: singleURL.path + " (nor model.safetensors.index.json)")
        }
        self.files = files
        self.fileOf = fileOf
    }

    private static func readIndex(_ url: URL) throws -> [String: String] {
        let data: Data
        do { data = try Data(contentsOf: url) } catch { throw LoaderError.cannotOpen(path: url.path, errno: 0) }
        guard let obj = JSONValue.parse(data)?.object else {
            throw LoaderError.badIndex(path: url.path, detail: "not a JSON object")
        }
        guard let wm = obj["weight_map"]?.object else {
            throw LoaderError.badIndex(path: url.path, detail: "missing weight_map")
        }
        var map: [String: String] = [:]
        for (k, v) in wm {
            guard let s = v.string else { throw LoaderError.badIndex(path: url.path, detail: "weight_map['\(k)'] is not a file name") }
            map[k] = s
        }
        return map
    }

    public var tensorNames: [String] { fileOf.keys.sorted() }

    public func contains(_ name: String) -> Bool { fileOf[name] != nil }

    public func info(_ name: String) throws -> TensorInfo {
        guard let f = fileOf[name], let info = files[f]?.tensors[name] else {
            throw LoaderError.missingTensor(name: name, searched: directory.path)
        }
        return info
    }

    /// Path of the file holding `name`, for error messages.
    public func path(of name: String) -> String {
        directory.appendingPathComponent(fileOf[name] ?? "?").path
    }

    /// Decodes tensor `name` to f32, checking it has exactly `shape` (the shape config.json implies).
    public func floats(_ name: String, shape: [Int]) throws -> [Float] {
        guard let fname = fileOf[name], let file = files[fname], let info = file.tensors[name] else {
            throw LoaderError.missingTensor(name: name, searched: directory.path)
        }
        guard info.shape == shape else {
            throw LoaderError.shapeMismatch(path: file.file.path, tensor: name, expected: shape, actual: info.shape)
        }
        let values = file.loadFloats(info)
        // The f32 copy is what we keep; let the kernel drop the mapped pages so RSS counts weights once.
        file.file.dontNeed(info.byteRange)
        return values
    }

    /// A `[rows, cols]` matrix from a tensor whose shape is `shape` (e.g. conv1d.weight [Di, 1, K] as [Di, K]).
    public func matrix(_ name: String, shape: [Int], as2D: (rows: Int, cols: Int)? = nil) throws -> Matrix {
        let v = try floats(name, shape: shape)
        let rc = as2D ?? (shape.count == 2 ? (shape[0], shape[1]) : (1, v.count))
        return Matrix(rows: rc.rows, cols: rc.cols, storage: v)
    }

    /// Total bytes of the tensors whose names satisfy `filter`, as stored on disk.
    public func storedBytes(where filter: (String) -> Bool) -> Int {
        var total = 0
        for (name, f) in fileOf where filter(name) { total += files[f]?.tensors[name]?.byteRange.count ?? 0 }
        return total
    }

    /// A stable fingerprint of the weight index (names, dtypes, shapes): workers and the coordinator must agree.
    public func indexFingerprintText() -> String {
        tensorNames.compactMap { n in
            guard let i = try? info(n) else { return nil }
            return "\(n):\(i.dtype.rawValue):\(i.shape)"
        }.joined(separator: "\n")
    }
}
