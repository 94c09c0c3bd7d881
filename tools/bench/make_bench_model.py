#!/usr/bin/env python3
"""make_bench_model.py: creates the random-initialised benchmark Jamba (426M parameters, 1.7 GB f32; never commit it).

Usage: python3 tools/bench/make_bench_model.py [OUT_DIR]   (default: .bench-model/ in the repo, git-ignored)
Needs torch and transformers (pip install torch transformers). Same config and seed as the reference anchor
in the project's benchmark notes: vocab 32000, hidden 1024, 8 layers, attention at 4, MoE at odd layers,
8 experts top-2, 16 heads / 4 kv heads, intermediate 2816, d_state 16, d_conv 4, expand 2.
"""
import os
import pathlib
import sys

import torch
from transformers import JambaConfig, JambaForCausalLM

CONFIG = dict(
    vocab_size=32000, hidden_size=1024, num_hidden_layers=8, attn_layer_period=8, attn_layer_offset=4,
    expert_layer_period=2, expert_layer_offset=1, num_experts=8, num_experts_per_tok=2,
    num_attention_heads=16, num_key_value_heads=4, intermediate_size=2816, mamba_d_state=16, mamba_d_conv=4,
    mamba_expand=2, pad_token_id=0, bos_token_id=1, eos_token_id=2, use_mamba_kernels=False,
)

out = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else pathlib.Path(__file__).resolve().parents[2] / ".bench-model")
if (out / "config.json").exists():
    print(f"{out} exists; delete it to rebuild")
    sys.exit(0)
torch.manual_seed(0)
model = JambaForCausalLM(JambaConfig(**CONFIG)).eval()
n = sum(p.numel() for p in model.parameters())
model.save_pretrained(str(out))
print(f"wrote {out}: {n:,} parameters")
