#!/usr/bin/env python3
# Generates Tests/Fixtures/tokenizer/variant_golden.json: HF `tokenizers` outputs for pipeline variants of the
# reference tokenizer.json (merge formats, prepend schemes, split=true, legacy normalizer, unk handling, ...).
#
# Each variant is stored as a *patch* on the reference file rather than a full copy (the base is 116 KB), and the
# Swift tests apply the same patch before comparing. Run from the repository root:
#   python3 tools/tokenizer-bench/make_variant_cases.py
import copy
import json
import pathlib

from tokenizers import Tokenizer

FIXTURES = pathlib.Path("Tests/Fixtures/tokenizer")
BASE = json.loads((FIXTURES / "tokenizer.json").read_text())
GOLDEN = json.loads((FIXTURES / "golden_tokenizer.json").read_text())

META = "\u2581"
STANDARD_DECODER = {"type": "Sequence", "decoders": [
    {"type": "Replace", "pattern": {"String": META}, "content": " "},
    {"type": "ByteFallback"}, {"type": "Fuse"},
    {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}


def metaspace(scheme, split):
    return {"type": "Metaspace", "replacement": META, "prepend_scheme": scheme, "split": split}


def added(id_, content, special, normalized, lstrip=False, rstrip=False, single_word=False):
    return {"id": id_, "content": content, "single_word": single_word, "lstrip": lstrip, "rstrip": rstrip,
            "normalized": normalized, "special": special}


# Ids past the base vocab (4096) so they extend it, as HF's add_tokens would.
EXTRA_TOKENS = [
    added(4096, "<|im_start|>", True, False, rstrip=True),
    added(4097, "<|im_end|>", True, False, lstrip=True),
    added(4098, "hello", False, True, single_word=True),
    added(4099, "world", False, True),
]

VARIANTS = {
    "merges_as_strings": {"merges_format": "strings"},
    "prepend_always": {"pre_tokenizer": metaspace("always", False)},
    "prepend_never": {"pre_tokenizer": metaspace("never", False)},
    "split_true": {"pre_tokenizer": metaspace("first", True)},
    "legacy_normalizer": {
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": META},
            {"type": "Replace", "pattern": {"String": " "}, "content": META}]},
        "pre_tokenizer": None,
    },
    "metaspace_decoder": {"decoder": {"type": "Sequence", "decoders": [
        {"type": "ByteFallback"},
        {"type": "Metaspace", "replacement": META, "prepend_scheme": "always", "split": True}]}},
    "strip_left_unfused": {"decoder": {"type": "Sequence", "decoders": [
        {"type": "Replace", "pattern": {"String": META}, "content": " "},
        {"type": "ByteFallback"},
        {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}},
    "strip_right_fused": {"decoder": {"type": "Sequence", "decoders": [
        {"type": "Replace", "pattern": {"String": META}, "content": " "},
        {"type": "ByteFallback"}, {"type": "Fuse"},
        {"type": "Strip", "content": " ", "start": 1, "stop": 2}]}},
    "unk_fused_no_byte_fallback": {"model": {"byte_fallback": False, "fuse_unk": True}},
    "unk_unfused_no_byte_fallback": {"model": {"byte_fallback": False, "fuse_unk": False}},
    "ignore_merges_split": {"model": {"ignore_merges": True}, "pre_tokenizer": metaspace("first", True)},
    "digits_sequence": {"pre_tokenizer": {"type": "Sequence", "pretokenizers": [
        metaspace("first", True), {"type": "Digits", "individual_digits": False}]}},
    "extra_added_tokens": {"added_tokens_extra": EXTRA_TOKENS},
    "extra_added_tokens_legacy": {
        "added_tokens_extra": EXTRA_TOKENS,
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": META},
            {"type": "Replace", "pattern": {"String": " "}, "content": META}]},
        "pre_tokenizer": None,
    },
    "no_post_processor_nfkc_lowercase": {
        "post_processor": None,
        "normalizer": {"type": "Sequence", "normalizers": [{"type": "NFKC"}, {"type": "Lowercase"}]},
    },
}

EXTRA_TEXTS = [
    "<|im_start|>user\nhello world<|im_end|>  <|im_start|>  assistant",
    "say hello, helloworld and hello_there or xhello hello",
    "world<s>world</s> <unk>the",
    "<s>",
    "<s> ",
    " <s>x",
    "ＦＵＬＬ width ﬁ ligature Ⅻ ²",
    "ΣΑΣ ÉCOLE İstanbul",
    "aaa\u0301 \u2581\u2581 x",
    "12345 and 1,5 and ٣٤ and ½",
    "the theirs thee",
]


def apply_patch(patch):
    tok = copy.deepcopy(BASE)
    for key, value in patch.items():
        if key == "merges_format":
            tok["model"]["merges"] = [" ".join(pair) for pair in tok["model"]["merges"]]
        elif key == "added_tokens_extra":
            tok["added_tokens"] = tok["added_tokens"] + value
        elif key == "model":
            tok["model"].update(value)
        else:
            tok[key] = value
    return tok


def safe_decode(tokenizer, ids, skip):
    # HF's Strip decoder panics when its left and right cuts cross (e.g. " " with start=1, stop=1); such cases
    # are recorded as null and skipped by the tests.
    try:
        return tokenizer.decode(ids, skip_special_tokens=skip)
    except BaseException:  # pyo3's PanicException derives from BaseException
        return None


def main():
    # The long KJV passage of the golden file adds size but no new behaviour here.
    texts = [case["text"] for case in GOLDEN["encode_cases"] if len(case["text"]) <= 200] + EXTRA_TEXTS
    out = {"description": "HF tokenizers outputs for patched variants of tokenizer.json; see "
                          "tools/tokenizer-bench/make_variant_cases.py",
           "variants": []}
    for name, patch in VARIANTS.items():
        tokenizer = Tokenizer.from_str(json.dumps(apply_patch(patch)))
        cases = []
        for text in texts:
            plain = tokenizer.encode(text, add_special_tokens=False)
            with_special = tokenizer.encode(text, add_special_tokens=True)
            cases.append({
                "text": text,
                "ids": plain.ids,
                "ids_with_special": with_special.ids,
                "decoded": safe_decode(tokenizer, with_special.ids, True),
                "decoded_keep_special": safe_decode(tokenizer, with_special.ids, False),
            })
        out["variants"].append({"name": name, "patch": patch, "cases": cases})
    path = FIXTURES / "variant_golden.json"
    path.write_text(json.dumps(out, ensure_ascii=False, separators=(",", ":")) + "\n")
    print(f"wrote {path}: {len(VARIANTS)} variants x {len(texts)} texts")


if __name__ == "__main__":
    main()
