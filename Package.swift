// swift-tools-version:6.0
// JambaCluster: distributed expert-parallel inference for Jamba-style models (Mamba + attention + MoE) on CPUs.
import PackageDescription

let package = Package(
    name: "JambaCluster",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "jamba", targets: ["JambaCLI"]),
        .executable(name: "jamba-coordinator", targets: ["JambaCoordinatorMain"]),
        .executable(name: "jamba-worker", targets: ["JambaWorkerMain"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
    ],
    targets: [
        // System libraries: a module map over a shim header each (no pkgConfig: it makes SwiftPM warn on every build).
        .systemLibrary(name: "COpenBLAS", path: "Sources/COpenBLAS"),
        .systemLibrary(name: "CZeroMQ", path: "Sources/CZeroMQ"),

        // Hand-written kernels for what BLAS does poorly (few-row products, the selective scan), AVX2 picked at run time.
        .target(name: "CKernels", path: "Sources/CKernels", cSettings: [.unsafeFlags(["-O3"])]),

        // Math and model: never know about the network.
        .target(name: "JambaMath", dependencies: ["COpenBLAS", "CKernels"]),
        .target(name: "JambaLoader", dependencies: ["JambaMath"]),
        .target(name: "JambaModel", dependencies: ["JambaMath", "JambaLoader"]),
        .target(name: "JambaTokenizer"),

        // Transport and wire format.
        .target(name: "ZeroMQ", dependencies: ["CZeroMQ"]),
        .target(name: "JambaWire", dependencies: ["JambaMath", .product(name: "SwiftProtobuf", package: "swift-protobuf")]),

        // Placement and balancing as pure functions.
        .target(name: "JambaScheduler"),

        // Services: coordinator, worker, remote expert executor, jobs.
        .target(name: "JambaCluster", dependencies: [
            "JambaModel", "JambaLoader", "JambaTokenizer", "JambaWire", "ZeroMQ", "JambaScheduler",
            .product(name: "Logging", package: "swift-log"),
        ]),

        .executableTarget(name: "JambaCLI", dependencies: [
            "JambaModel", "JambaTokenizer", "JambaCluster",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .executableTarget(name: "JambaCoordinatorMain", dependencies: [
            "JambaCluster", .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .executableTarget(name: "JambaWorkerMain", dependencies: [
            "JambaCluster", .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ]),

        .testTarget(name: "JambaMathTests", dependencies: ["JambaMath", "CKernels"]),
        .testTarget(name: "JambaLoaderTests", dependencies: ["JambaLoader", "JambaMath"]),
        .testTarget(name: "JambaModelTests", dependencies: ["JambaModel", "JambaLoader", "JambaMath"]),
        .testTarget(name: "JambaTokenizerTests", dependencies: ["JambaTokenizer"]),
        .testTarget(name: "ZeroMQTests", dependencies: ["ZeroMQ"]),
        .testTarget(name: "JambaWireTests", dependencies: ["JambaWire", "JambaMath"]),
        .testTarget(name: "JambaSchedulerTests", dependencies: ["JambaScheduler"]),
        .testTarget(name: "JambaClusterTests", dependencies: ["JambaCluster", "JambaModel", "JambaWire", "ZeroMQ"]),
    ]
)
