#!/usr/bin/env bash
# ensure-deps.sh: installs the C libraries the build links (libzmq, OpenBLAS) when missing, or says how to;
# --with-protoc and --with-bible add protoc (proto/generate.sh) and the tokenizer benchmark's corpus.
set -euo pipefail
packages=(libzmq3-dev libopenblas-dev)
for opt in "$@"; do
  case "$opt" in
    --with-protoc) packages+=(protobuf-compiler) ;;
    --with-bible) packages+=(bible-kjv) ;;  # the tokenizer benchmark's corpus (tools/tokenizer-bench)
    *) echo "ensure-deps.sh: unknown option $opt" >&2; exit 2 ;;
  esac
done
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ]; then
  echo "==> installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
else
  echo "missing packages: ${missing[*]}" >&2
  echo "run: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
