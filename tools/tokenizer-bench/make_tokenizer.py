#!/usr/bin/env python3
# Builds a large (up to 65,536 entries) Llama/Jamba-style tokenizer.json for benchmarking JambaTokenizer, with
# the same pipeline as Tests/Fixtures/tokenizer/tokenizer.json (see /work/shared/reference/tokenizer/README.md).
#
# Corpus: the King James Bible (Debian bible-kjv, `bible -f Gen1:1-Rev22:21`, verse references removed) plus,
# because the KJV alone runs out of merges long before 65,536, the Python standard library sources under
# /usr/lib/python3*/. Output goes to /tmp by default (the file is several MB: do not commit it).
#
#   python3 tools/tokenizer-bench/make_tokenizer.py [--out /tmp/tokenizer-bench] [--vocab-size 65536]
#
# Writes OUT/tokenizer.json, OUT/kjv.txt (benchmark text) and OUT/python.txt, and prints the real vocab size.
import argparse
import glob
import json
import pathlib
import re
import subprocess

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

SPECIALS = ["<unk>", "<s>", "</s>", "<pad>"]
BYTE_TOKENS = [f"<0x{b:02X}>" for b in range(256)]
META = "\u2581"
# Same initial alphabet as the reference tokenizer: printable ASCII, a few common non-ASCII characters, and the
# metaspace itself (without it every word start would go through byte fallback).
ALPHABET = [chr(c) for c in range(0x20, 0x7F)] + list("éèàüöñç—’“”…中") + [META]


def kjv_verses():
    text = subprocess.run(["bible", "-f", "Gen1:1-Rev22:21"], check=True, capture_output=True,
                          text=True).stdout
    verses = []
    for line in text.splitlines():
        line = re.sub(r"^\S+\d+:\d+\s+", "", line).strip()  # "Ge1:1 In the beginning..." -> text
        if line:
            verses.append(line)
    return verses


def python_lines(limit_bytes):
    lines, size = [], 0
    for path in sorted(glob.glob("/usr/lib/python3*/**/*.py", recursive=True)):
        try:
            for line in pathlib.Path(path).read_text(encoding="utf-8").splitlines():
                if line.strip():
                    lines.append(line)
                    size += len(line) + 1
        except (UnicodeDecodeError, OSError):
            continue
        if size >= limit_bytes:
            break
    return lines


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="/tmp/tokenizer-bench")
    parser.add_argument("--vocab-size", type=int, default=65536)
    parser.add_argument("--python-bytes", type=int, default=40_000_000)
    args = parser.parse_args()
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    verses = kjv_verses()
    code = python_lines(args.python_bytes)
    (out / "kjv.txt").write_text("\n".join(verses) + "\n")
    (out / "python.txt").write_text("\n".join(code) + "\n")

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    # sentencepiece-like training: no piece crosses a word start and digits never merge; the shipped file then
    # uses Metaspace(split=false), which yields the same ids for such a merge table.
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Metaspace(replacement=META, prepend_scheme="first", split=True),
        pre_tokenizers.Digits(individual_digits=True),
    ])
    trainer = trainers.BpeTrainer(vocab_size=args.vocab_size, min_frequency=2, show_progress=False,
                                  special_tokens=SPECIALS + BYTE_TOKENS, initial_alphabet=ALPHABET,
                                  limit_alphabet=len(ALPHABET))
    tokenizer.train_from_iterator(verses + code, trainer=trainer)

    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement=META, prepend_scheme="first", split=False)
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)])
    tokenizer.decoder = decoders.Sequence([
        decoders.Replace(META, " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)])

    # The byte tokens were passed as trainer specials only to pin them to ids 4..259; they must be ordinary
    # vocab entries, or decode(skip_special_tokens=True) would drop them.
    data = json.loads(tokenizer.to_str())
    data["added_tokens"] = [t for t in data["added_tokens"] if t["content"] in SPECIALS]
    path = out / "tokenizer.json"
    path.write_text(json.dumps(data, ensure_ascii=False))

    final = Tokenizer.from_file(str(path))
    assert final.token_to_id("<0x0A>") == 14, "byte tokens must sit at 4 + byte value"
    print(f"vocab size {final.get_vocab_size()} ({len(data['model']['merges'])} merges), wrote {path} "
          f"({path.stat().st_size / 1e6:.1f} MB), kjv.txt {len(verses)} verses, python.txt {len(code)} lines")


if __name__ == "__main__":
    main()
