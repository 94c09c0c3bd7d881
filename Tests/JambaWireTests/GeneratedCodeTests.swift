// GeneratedCodeTests: the committed Sources/JambaWire/Generated/*.pb.swift must match proto/jamba/v1/*.proto.
import Foundation
import XCTest

/// Two levels, so the check never silently passes:
///
/// * Always: every message, enum, field and enum value declared in the .proto files is found in the
///   generated Swift of the same file (a schema edit without regeneration fails here on any machine).
/// * When `protoc` is on PATH and `.build-protoc/protoc-gen-swift` exists (built by
///   `proto/generate.sh --plugin`): regenerate into a temp dir and require byte-identical output, which
///   also catches changed field numbers, types and comments. When that is not possible the test says so
///   in the output, with the command that enables it.
final class GeneratedCodeTests: XCTestCase {
    private let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    private var protoDir: URL { root.appendingPathComponent("proto/jamba/v1") }
    private var generatedDir: URL { root.appendingPathComponent("Sources/JambaWire/Generated") }

    private func protoFiles() throws -> [URL] {
        try FileManager.default.contentsOfDirectory(at: protoDir, includingPropertiesForKeys: nil)
            .filter { $0.pathExtension == "proto" }.sorted { $0.path < $1.path }
    }

    func testEveryDeclarationInTheProtoFilesIsInTheGeneratedSwift() throws {
        let protos = try protoFiles()
        XCTAssertGreaterThanOrEqual(protos.count, 4, "expected tensor/expert/worker/client protos in \(protoDir.path)")
        var checked = 0
        for proto in protos {
            let base = proto.deletingPathExtension().lastPathComponent
            let swiftFile = generatedDir.appendingPathComponent("\(base).pb.swift")
            guard let swift = try? String(contentsOf: swiftFile, encoding: .utf8) else {
                XCTFail("\(swiftFile.path) missing: run proto/generate.sh")
                continue
            }
            XCTAssertTrue(swift.contains("// Source: jamba/v1/\(base).proto"), "\(swiftFile.lastPathComponent) not generated from \(base).proto")
            let decls = ProtoOutline.parse(try String(contentsOf: proto, encoding: .utf8))
            XCTAssertFalse(decls.types.isEmpty, "no messages parsed from \(base).proto")
            for type in decls.types {
                let needle = type.isEnum ? "enum Jamba_V1_\(type.swiftName):" : "_protobuf_package + \".\(type.protoName)\""
                XCTAssertTrue(swift.contains(needle), "\(base).proto declares \(type.protoName), \(base).pb.swift lacks it: run proto/generate.sh")
            }
            for name in decls.fieldsAndValues {
                // Field and enum value names are embedded verbatim in the generated name maps.
                XCTAssertTrue(swift.contains("\(name)\\0"), "\(base).proto has `\(name)`, \(base).pb.swift lacks it: run proto/generate.sh")
                checked += 1
            }
        }
        let generated = try FileManager.default.contentsOfDirectory(atPath: generatedDir.path).filter { $0.hasSuffix(".pb.swift") }
        XCTAssertEqual(Set(generated), Set(protos.map { $0.deletingPathExtension().lastPathComponent + ".pb.swift" }),
                       "stale or missing generated files")
        print("GeneratedCodeTests: \(checked) fields/enum values of \(protos.count) .proto files found in the generated Swift")
    }

    func testRegeneratingFromProtoReproducesTheCommittedCode() throws {
        let plugin = root.appendingPathComponent(".build-protoc/protoc-gen-swift")
        let protoc = (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":")
            .map { URL(fileURLWithPath: String($0)).appendingPathComponent("protoc") }
            .first { FileManager.default.isExecutableFile(atPath: $0.path) }
        guard protoc != nil, FileManager.default.isExecutableFile(atPath: plugin.path) else {
            let missing = protoc == nil ? "protoc is not on PATH (apt-get install -y protobuf-compiler)"
                                        : "\(plugin.path) does not exist (run proto/generate.sh --plugin)"
            throw XCTSkip("Byte-exact regeneration check not run: \(missing). The declaration check above still ran.")
        }
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("jamba-proto-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: out) }

        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = [root.appendingPathComponent("proto/generate.sh").path, out.path]
        var env = ProcessInfo.processInfo.environment
        env["JAMBA_PROTOC_NO_BUILD"] = "1"
        process.environment = env
        let stderr = Pipe()
        process.standardError = stderr
        try process.run()
        let errText = String(decoding: stderr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0, "proto/generate.sh failed: \(errText)")
        guard process.terminationStatus == 0 else { return }

        let fresh = try FileManager.default.contentsOfDirectory(atPath: out.path).filter { $0.hasSuffix(".pb.swift") }.sorted()
        let committed = try FileManager.default.contentsOfDirectory(atPath: generatedDir.path).filter { $0.hasSuffix(".pb.swift") }.sorted()
        XCTAssertEqual(fresh, committed, "generated file set differs: run proto/generate.sh")
        for name in fresh {
            let a = try Data(contentsOf: out.appendingPathComponent(name))
            let b = try Data(contentsOf: generatedDir.appendingPathComponent(name))
            XCTAssertTrue(a == b, "\(name) differs from what proto/ generates: run proto/generate.sh and commit")
        }
        print("GeneratedCodeTests: regenerated \(fresh.count) files with protoc + .build-protoc/protoc-gen-swift: identical")
    }
}

/// Just enough of a .proto reader to list declarations: messages/enums (with nesting) and the names of
/// fields and enum values. Comments are stripped; `reserved`, `option`, `oneof` headers are not fields.
enum ProtoOutline {
    struct TypeDecl {
        var protoName: String   // "Outer.Inner"
        var isEnum: Bool
        var swiftName: String { protoName.replacingOccurrences(of: ".", with: "_") }
    }

    static func parse(_ text: String) -> (types: [TypeDecl], fieldsAndValues: [String]) {
        var types: [TypeDecl] = []
        var names: [String] = []
        var scope: [String?] = []   // one entry per open brace: a type name, or nil (oneof, option blocks)
        for rawLine in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let code = rawLine.range(of: "//").map { rawLine[..<$0.lowerBound] } ?? rawLine[...]
            let line = code.trimmingCharacters(in: .whitespaces)
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            if let kw = words.first, kw == "message" || kw == "enum", words.count >= 2, line.hasSuffix("{") {
                let name = words[1].trimmingCharacters(in: CharacterSet(charactersIn: "{"))
                let full = (scope.compactMap { $0 } + [name]).joined(separator: ".")
                types.append(TypeDecl(protoName: full, isEnum: kw == "enum"))
                scope.append(full)
                continue
            }
            if line.hasSuffix("{") { scope.append(nil); continue }
            if line.hasPrefix("}") { if !scope.isEmpty { scope.removeLast() }; continue }
            guard !scope.isEmpty, line.hasSuffix(";"), line.contains("="),
                  !["reserved", "option", "syntax", "package", "import"].contains(words.first ?? "") else { continue }
            // "repeated int64 shape = 2;" -> shape, "DTYPE_F32 = 1;" -> DTYPE_F32
            if let eq = words.firstIndex(of: "="), eq >= 1 { names.append(words[eq - 1]) }
        }
        return (types, names)
    }
}
