#!/usr/bin/env python3
"""Writes the seed corpus / regression inputs of the SSL checkpoint-metadata reader
(c3_ssl_options_from_metadata; tests/fuzz_ssl_metadata.c, tests/test_ssl.c):
safetensors files with metadata and no tensors. valid_* must be accepted,
invalid_<status>_* refused with that status (format, invalid). Run from this folder."""
import json
import struct

BASE = {
    "format": "csal3d-checkpoint", "format_version": "1", "embed_dim": "12",
    "in_channels": "1", "step": "3", "seed": "11",
    "optim.lr": "0.001", "optim.beta1": "0.9", "optim.beta2": "0.999", "optim.eps": "1e-08",
    "optim.weight_decay": "0.1", "optim.clip_norm": "1", "optim.warmup_steps": "1",
    "optim.total_steps": "4",
    "ssl.crop_size": "32,64,32", "ssl.batch_size": "2", "ssl.lr_option": "0",
    "ssl.mask_ratio": "0.6", "ssl.mask_mode": "keep", "ssl.weight_inpainting": "1",
    "ssl.weight_rotation": "0.5", "ssl.weight_consistency": "2",
    "ssl.inpainting_masked_only": "1", "ssl.inpainting_zscore_target": "0",
    "ssl.checkpoint_every": "2", "ssl.cache_bytes": "1073741824",
    "ssl.checkpoint_path": "/tmp/ssl.safetensors",
}


def write(name, meta):
    header = json.dumps({"__metadata__": meta}, separators=(",", ":")).encode()
    with open(name + ".safetensors", "wb") as f:
        f.write(struct.pack("<Q", len(header)) + header)


def variant(**changes):
    m = dict(BASE)
    for k, v in changes.items():
        k = k.replace("__", ".")
        if v is None:
            m.pop(k, None)
        else:
            m[k] = v
    return m


write("valid_full", BASE)
write("valid_bare_weights", {"embed_dim": "24", "in_channels": "2"})
write("valid_empty", {})
write("valid_hide", variant(ssl__mask_mode="hide", ssl__crop_size="128,128,128"))
write("invalid_format_crop_two", variant(ssl__crop_size="32,64"))
write("invalid_format_crop_text", variant(ssl__crop_size="32,x,32"))
write("invalid_format_crop_trailing", variant(ssl__crop_size="32,64,32,"))
write("invalid_format_crop_overflow", variant(ssl__crop_size="32,99999999999999999999,32"))
write("invalid_invalid_crop_not_32", variant(ssl__crop_size="32,48,32"))
write("invalid_invalid_crop_negative", variant(ssl__crop_size="-32,64,32"))
write("invalid_format_batch_huge", variant(ssl__batch_size="4294967297"))
write("invalid_format_batch_zero", variant(ssl__batch_size="0"))
write("invalid_format_mask_mode", variant(ssl__mask_mode="half"))
write("invalid_invalid_mask_ratio", variant(ssl__mask_ratio="1.5"))
write("invalid_invalid_mask_ratio_nan", variant(ssl__mask_ratio="nan"))
write("invalid_format_weight_text", variant(ssl__weight_rotation="one"))
write("invalid_invalid_weight_inf", variant(ssl__weight_consistency="inf"))
write("invalid_invalid_weight_negative", variant(ssl__weight_inpainting="-1"))
write("invalid_format_total_steps_text", variant(optim__total_steps="4 steps"))
write("invalid_invalid_total_steps_zero", variant(optim__total_steps="0"))
write("invalid_invalid_clip_negative", variant(optim__clip_norm="-1"))
write("invalid_invalid_checkpoint_every", variant(ssl__checkpoint_every="-2"))
write("invalid_format_cache_text", variant(ssl__cache_bytes=""))
write("invalid_invalid_embed_dim", variant(embed_dim="10"))
