// SafeTensors: parses and validates one .safetensors file's header over a memory map.
import Foundation
import JambaMath

/// One tensor's entry in a safetensors header.
public struct TensorInfo: Sendable, Equatable {
    public let name: String
    public let dtype: DType
    public let shape: [Int]
    /// Byte range inside the file (already offset past the header).
    public let byteRange: Range<Int>

    public var elementCount: Int { shape.reduce(1, *) }
}

/// A validated safetensors file: 8-byte little-endian header length, a JSON header of
/// `name → {dtype, shape, data_offsets}`, then the data. Validation is done once at open so that reading a
/// tensor later cannot go out of bounds.
public struct SafeTensorsFile: Sendable {
    public let file: MappedFile
    public let tensors: [String: TensorInfo]
    public let metadata: [String: String]

    /// Headers above this are refused (the format's reference implementation uses 100 MB).
    public static let maxHeaderBytes = 100_000_000

    public init(path: String) throws {
        let file = try MappedFile(path: path)
        self.file = file
        guard file.size >= 8, let base = file.base else {
            throw LoaderError.truncated(path: path, detail: "file has \(file.size) bytes, fewer than the 8-byte header length")
        }
        let headerLen64 = UInt64(littleEndian: base.loadUnaligned(as: UInt64.self))
        guard headerLen64 <= UInt64(Self.maxHeaderBytes) else {
            throw LoaderError.badHeader(path: path, detail: "header length \(headerLen64) exceeds \(Self.maxHeaderBytes) bytes")
        }
        let headerLen = Int(headerLen64)
        guard 8 + headerLen <= file.size else {
            throw LoaderError.truncated(path: path, detail: "header claims \(headerLen) bytes but file has \(file.size - 8) after the length")
        }
        let headerData = Data(file.bytes(8..<(8 + headerLen)))
        guard let json = JSONValue.parse(headerData) else {
            throw LoaderError.badHeader(path: path, detail: "header is not valid JSON")
        }
        guard let dict = json.object else {
            throw LoaderError.badHeader(path: path, detail: "header is not a JSON object")
        }
        let dataStart = 8 + headerLen
        let dataSize = file.size - dataStart
        var tensors: [String: TensorInfo] = [:]
        var metadata: [String: String] = [:]
        for (name, value) in dict {
            if name == "__metadata__" {
                for (k, v) in value.object ?? [:] { metadata[k] = v.string ?? v.summary }
                continue
            }
            tensors[name] = try Self.parseEntry(name: name, value: value, path: path, dataStart: dataStart, dataSize: dataSize)
        }
        // Data ranges must not overlap: sort by start and compare neighbours.
        let sorted = tensors.values.sorted { ($0.byteRange.lowerBound, $0.name) < ($1.byteRange.lowerBound, $1.name) }
        for (a, b) in zip(sorted, sorted.dropFirst()) where a.byteRange.upperBound > b.byteRange.lowerBound && !a.byteRange.isEmpty && !b.byteRange.isEmpty {
            throw LoaderError.overlappingTensors(path: path, first: a.name, second: b.name)
        }
        self.tensors = tensors
        self.metadata = metadata
    }

    private static func parseEntry(name: String, value: JSONValue, path: String, dataStart: Int, dataSize: Int) throws -> TensorInfo {
        guard let e = value.object else {
            throw LoaderError.badTensorEntry(path: path, tensor: name, detail: "entry is not a JSON object")
        }
        guard let dtypeName = e["dtype"]?.string else {
            throw LoaderError.badTensorEntry(path: path, tensor: name, detail: "missing dtype")
        }
        guard let dtype = DType(rawValue: dtypeName) else {
            throw LoaderError.unknownDType(path: path, tensor: name, dtype: dtypeName)
        }
        guard let shapeAny = e["shape"]?.array, let shape = Self.ints(shapeAny), shape.allSatisfy({ $0 >= 0 }) else {
            throw LoaderError.badTensorEntry(path: path, tensor: name, detail: "shape is not a list of non-negative integers")
        }
        guard let offAny = e["data_offsets"]?.array, let offs = Self.ints(offAny), offs.count == 2,
              offs[0] >= 0, offs[1] >= offs[0] else {
            throw LoaderError.badTensorEntry(path: path, tensor: name, detail: "data_offsets is not [begin, end] with begin <= end")
        }
        var count = 1
        for d in shape {
            let (m, overflow) = count.multipliedReportingOverflow(by: d)
            guard !overflow else { throw LoaderError.badTensorEntry(path: path, tensor: name, detail: "shape \(shape) overflows") }
            count = m
        }
        let expectedBytes = count * dtype.byteSize
        guard offs[1] - offs[0] == expectedBytes else {
            throw LoaderError.badTensorEntry(path: path, tensor: name,
                detail: "shape \(shape) × \(dtypeName) is \(expectedBytes) bytes but data_offsets span \(offs[1] - offs[0])")
        }
        guard offs[1] <= dataSize else {
            throw LoaderError.truncated(path: path, detail: "tensor '\(name)' ends at byte \(offs[1]) of the data section, which has only \(dataSize) bytes")
        }
        return TensorInfo(name: name, dtype: dtype, shape: shape, byteRange: (dataStart + offs[0])..<(dataStart + offs[1]))
    }

    private static func ints(_ a: [JSONValue]) -> [Int]? {
        var out: [Int] = []
        for v in a {
            guard case let .int(i) = v else { return nil }
            out.append(i)
        }
        return out
    }

    /// Decodes a tensor to f32, converting from its stored dtype.
    public func loadFloats(_ info: TensorInfo) -> [Float] {
        DTypeConversion.decode(info.dtype, bytes: file.bytes(info.byteRange))
    }
}
