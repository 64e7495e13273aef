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
    "data.modality": "mri", "data.channel": "all", "data.spacing": "1.5,1.5,2",
    "data.intensity": '{"crops":8,"voxels":262144,"mean":0.25,"std":0.125,"min":0,"max":1}',
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
# the data options (data.*): absent keys are unknown, malformed ones FORMAT errors
write("valid_data_none", variant(data__modality="none", data__channel="3",
                                 data__spacing="native", data__intensity=None))
write("valid_data_absent", variant(data__modality=None, data__channel=None,
                                   data__spacing=None, data__intensity=None))
write("valid_data_intensity_extra_key",
      variant(data__intensity='{"crops":1,"voxels":1,"mean":0.5,"std":0,"min":0.5,'
                              '"max":0.5,"p99":0.5}'))
write("invalid_format_data_modality", variant(data__modality="CT"))
write("invalid_format_data_modality_auto", variant(data__modality="auto"))
write("invalid_format_data_channel_negative", variant(data__channel="-1"))
write("invalid_format_data_channel_text", variant(data__channel="first"))
write("invalid_format_data_channel_huge", variant(data__channel="99999999999"))
write("invalid_format_data_spacing_two", variant(data__spacing="1.5,1.5"))
write("invalid_format_data_spacing_negative", variant(data__spacing="1.5,-1,1.5"))
write("invalid_format_data_spacing_nan", variant(data__spacing="nan,1,1"))
write("invalid_format_data_spacing_space", variant(data__spacing="1, 1,1"))
write("invalid_format_data_intensity_text", variant(data__intensity="mean 0.5"))
write("invalid_format_data_intensity_missing",
      variant(data__intensity='{"crops":8,"voxels":8,"mean":0.5,"min":0,"max":1}'))
write("invalid_format_data_intensity_zero_crops",
      variant(data__intensity='{"crops":0,"voxels":8,"mean":0.5,"std":0,"min":0,"max":1}'))
write("invalid_format_data_intensity_min_above_max",
      variant(data__intensity='{"crops":1,"voxels":8,"mean":0.5,"std":0,"min":2,"max":1}'))
write("invalid_format_data_intensity_negative_std",
      variant(data__intensity='{"crops":1,"voxels":8,"mean":0.5,"std":-1,"min":0,"max":1}'))
write("invalid_format_data_intensity_string",
      variant(data__intensity='{"crops":"1","voxels":8,"mean":0.5,"std":0,"min":0,"max":1}'))
