// CorruptFileTests: every malformed safetensors file or index is refused with an error naming file and tensor.
import Foundation
import JambaLoader
import JambaMath
import XCTest

final class CorruptFileTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("jamba-loader-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: dir)
    }

    /// Writes a safetensors file from a header JSON string and a data section.
    func write(_ name: String, header: String, data: [UInt8], lengthOverride: UInt64? = nil) throws -> String {
        var bytes: [UInt8] = []
        let h = Array(header.utf8)
        var len = (lengthOverride ?? UInt64(h.count)).littleEndian
        withUnsafeBytes(of: &len) { bytes.append(contentsOf: $0) }
        bytes += h + data
        let url = dir.appendingPathComponent(name)
        try Data(bytes).write(to: url)
        return url.path
    }

    func expectError(_ path: String, _ contains: [String], file: StaticString = #filePath, line: UInt = #line) {
        do {
            _ = try SafeTensorsFile(path: path)
            XCTFail("expected an error for \(path)", file: file, line: line)
        } catch {
            let msg = "\(error)"
            print("[loader] \(URL(fileURLWithPath: path).lastPathComponent): \(msg)")
            for c in contains { XCTAssertTrue(msg.contains(c), "'\(msg)' should mention '\(c)'", file: file, line: line) }
        }
    }

    func testValidFileReads() throws {
        let p = try write("ok.safetensors", header: #"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#,
                          data: [0, 0, 128, 63, 0, 0, 0, 64])
        let f = try SafeTensorsFile(path: p)
        let info = try XCTUnwrap(f.tensors["w"])
        XCTAssertEqual(f.loadFloats(info), [1, 2])
    }

    func testTruncatedData() throws {
        let p = try write("trunc.safetensors", header: #"{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#, data: [0, 0, 0, 0])
        expectError(p, ["trunc.safetensors", "'w'", "truncated"])
    }

    func testFileShorterThanLength() throws {
        let url = dir.appendingPathComponent("tiny.safetensors")
        try Data([1, 2, 3]).write(to: url)
        expectError(url.path, ["tiny.safetensors", "truncated"])
    }

    func testHeaderLongerThanFile() throws {
        let p = try write("hdr.safetensors", header: "{}", data: [], lengthOverride: 4096)
        expectError(p, ["hdr.safetensors", "truncated"])
    }

    func testAbsurdHeaderLength() throws {
        let p = try write("huge.safetensors", header: "{}", data: [], lengthOverride: UInt64.max)
        expectError(p, ["huge.safetensors", "header length"])
    }

    func testBadJSON() throws {
        let p = try write("json.safetensors", header: #"{"w": {"dtype": "F32", "#, data: [])
        expectError(p, ["json.safetensors", "not valid JSON"])
    }

    func testUnknownDType() throws {
        let p = try write("dtype.safetensors", header: #"{"w":{"dtype":"I4","shape":[2],"data_offsets":[0,1]}}"#, data: [0])
        expectError(p, ["dtype.safetensors", "'w'", "I4"])
    }

    func testShapeDisagreesWithByteRange() throws {
        let p = try write("shape.safetensors", header: #"{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, data: Array(repeating: 0, count: 8))
        expectError(p, ["shape.safetensors", "'w'", "12 bytes", "span 8"])
    }

    func testOverlappingTensors() throws {
        let header = #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#
        let p = try write("overlap.safetensors", header: header, data: Array(repeating: 0, count: 12))
        expectError(p, ["overlap.safetensors", "'a'", "'b'", "overlap"])
    }

    func testNegativeShape() throws {
        let p = try write("neg.safetensors", header: #"{"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,0]}}"#, data: [])
        expectError(p, ["neg.safetensors", "'w'", "shape"])
    }

    func testBooleanShapeIsRejected() throws {
        let p = try write("bool.safetensors", header: #"{"w":{"dtype":"F32","shape":[true],"data_offsets":[0,4]}}"#, data: [0, 0, 0, 0])
        expectError(p, ["bool.safetensors", "'w'", "shape"])
    }

    func testMissingShardInIndex() throws {
        _ = try write("model-1.safetensors", header: #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#, data: [0, 0, 0, 0])
        let index = #"{"weight_map":{"a":"model-1.safetensors","b":"model-2.safetensors"}}"#
        try Data(index.utf8).write(to: dir.appendingPathComponent("model.safetensors.index.json"))
        XCTAssertThrowsError(try Checkpoint(directory: dir)) { e in
            print("[loader] index: \(e)")
            XCTAssertTrue("\(e)".contains("model-2.safetensors"))
        }
    }

    func testIndexNamesTensorAbsentFromShard() throws {
        _ = try write("model-1.safetensors", header: #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#, data: [0, 0, 0, 0])
        let index = #"{"weight_map":{"a":"model-1.safetensors","ghost":"model-1.safetensors"}}"#
        try Data(index.utf8).write(to: dir.appendingPathComponent("model.safetensors.index.json"))
        XCTAssertThrowsError(try Checkpoint(directory: dir)) { e in
            print("[loader] index: \(e)")
            XCTAssertTrue("\(e)".contains("ghost") && "\(e)".contains("model-1.safetensors"))
        }
    }

    func testShapeCheckAgainstConfigNamesTensor() throws {
        _ = try write("model.safetensors", header: #"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, data: Array(repeating: 0, count: 8))
        let ck = try Checkpoint(directory: dir)
        XCTAssertThrowsError(try ck.floats("w", shape: [3])) { e in
            XCTAssertEqual(e as? LoaderError, .shapeMismatch(path: dir.appendingPathComponent("model.safetensors").path, tensor: "w", expected: [3], actual: [2]))
        }
        XCTAssertThrowsError(try ck.floats("nope", shape: [1])) { e in
            XCTAssertTrue("\(e)".contains("'nope'"))
        }
    }

    func testEmptyFolder() throws {
        XCTAssertThrowsError(try Checkpoint(directory: dir)) { e in
            XCTAssertTrue("\(e)".contains("model.safetensors"))
        }
    }
}
