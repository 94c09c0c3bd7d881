#!/usr/bin/env bash
# generate.sh: regenerates Sources/JambaWire/Generated/*.pb.swift from proto/jamba/v1/*.proto.
#
# Uses Debian's protoc and a protoc-gen-swift built from apple/swift-protobuf at the exact version the
# package depends on, so generated code and runtime always match. The SwiftPM protobuf build plugin is
# deliberately not used: generated code is committed, and builds never need protoc.
#
# Usage: proto/generate.sh            regenerate into Sources/JambaWire/Generated
#        proto/generate.sh OUT_DIR    regenerate into OUT_DIR (the drift test uses a temp dir)
#        proto/generate.sh --plugin   only build/cache the plugin
# Env:   JAMBA_PROTOC_NO_BUILD=1      fail (exit 3) instead of building a missing or stale plugin
set -euo pipefail

SWIFT_PROTOBUF_VERSION=1.39.0
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="$ROOT/.build-protoc"                # gitignored (.build-*/)
PLUGIN="$CACHE/protoc-gen-swift"
STAMP="$CACHE/protoc-gen-swift.version"
OUT="$ROOT/Sources/JambaWire/Generated"
PLUGIN_ONLY=0
if [[ "${1:-}" == "--plugin" ]]; then PLUGIN_ONLY=1; elif [[ -n "${1:-}" ]]; then OUT="$1"; fi

if ! command -v protoc >/dev/null 2>&1; then
    echo "generate.sh: protoc not found. Install it with:" >&2
    echo "    apt-get update && apt-get install -y protobuf-compiler" >&2
    exit 1
fi

# Build the plugin once per version; the stamp catches a cache left over from another version.
if [[ ! -x "$PLUGIN" || "$(cat "$STAMP" 2>/dev/null)" != "$SWIFT_PROTOBUF_VERSION" ]]; then
    if [[ -n "${JAMBA_PROTOC_NO_BUILD:-}" ]]; then
        # Set by the drift test, which must not start a multi-minute build in the middle of a test run.
        echo "generate.sh: $PLUGIN missing or not $SWIFT_PROTOBUF_VERSION; run proto/generate.sh --plugin" >&2
        exit 3
    fi
    echo "generate.sh: building protoc-gen-swift $SWIFT_PROTOBUF_VERSION (once, cached in .build-protoc/)" >&2
    mkdir -p "$CACHE"
    SRC="$CACHE/swift-protobuf"
    if [[ ! -d "$SRC/.git" ]] || [[ "$(git -C "$SRC" describe --tags 2>/dev/null)" != "$SWIFT_PROTOBUF_VERSION" ]]; then
        rm -rf "$SRC"
        git clone --quiet --depth 1 --branch "$SWIFT_PROTOBUF_VERSION" https://github.com/apple/swift-protobuf "$SRC"
    fi
    (cd "$SRC" && swift build -c release --product protoc-gen-swift)
    cp "$SRC/.build/release/protoc-gen-swift" "$PLUGIN"
    echo "$SWIFT_PROTOBUF_VERSION" > "$STAMP"
fi
[[ $PLUGIN_ONLY == 1 ]] && exit 0

mkdir -p "$OUT"
rm -f "$OUT"/*.pb.swift
# DropPath: flat file names (tensor.pb.swift) in Generated/; Visibility=Public: JambaCluster uses the types.
# protoc runs from proto/ so that imports ("jamba/v1/tensor.proto") resolve against -I. and the
# generated headers do not embed absolute paths of the machine that ran it.
cd "$ROOT/proto"
protoc -I . \
    --plugin=protoc-gen-swift="$PLUGIN" \
    --swift_opt=Visibility=Public \
    --swift_opt=FileNaming=DropPath \
    --swift_out="$OUT" \
    jamba/v1/*.proto
echo "generate.sh: wrote $(ls "$OUT"/*.pb.swift | wc -l) files to $OUT" >&2
