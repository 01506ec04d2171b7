"""``model=random19b``: LTX-2 19B as ltx-core builds it by default, with random weights made on the device."""

from __future__ import annotations

import pytest
import torch

from ltxtune.errors import ConfigError
from ltxtune.model.random19b import RandomLTX2

TINY = {
    "num_attention_heads": 2,
    "attention_head_dim": 16,
    "audio_num_attention_heads": 2,
    "audio_attention_head_dim": 8,
    "connector_num_attention_heads": 2,
    "connector_attention_head_dim": 16,
    "connector_num_layers": 1,
}


def test_default_is_ltx2_19b_with_its_text_path() -> None:
    spec = RandomLTX2()
    transformer = spec.build_empty().transformer
    assert len(transformer.transformer_blocks) == 48
    assert 18.5e9 < sum(p.numel() for p in transformer.parameters()) < 19.5e9
    needs = spec.input_needs()
    assert (needs.text_width, needs.audio_text_width, needs.text_multiple) == (3840, 3840, 128)
    assert len(RandomLTX2(num_layers=4).build_empty().transformer.transformer_blocks) == 4


def test_fp8_cast_stores_the_block_linears_in_fp8_from_the_start() -> None:
    spec = RandomLTX2(num_layers=1, caption_channels=32, sizes=TINY, quantization="fp8_cast")
    model = spec.build(0, torch.device("cpu"))
    dtypes = {name: p.dtype for name, p in model.transformer.named_parameters()}
    assert dtypes["transformer_blocks.0.attn1.to_q.weight"] == torch.float8_e4m3fn
    assert dtypes["transformer_blocks.0.ff.net.0.proj.weight"] == torch.float8_e4m3fn
    assert dtypes["patchify_proj.weight"] == torch.bfloat16
    weight = model.transformer.transformer_blocks[0].attn1.to_q.weight
    assert weight.float().std() > 0  # filled in place, not left empty


def test_unknown_size_keys_and_quantized_float32_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"sizes.*num_heads"):
        RandomLTX2(sizes={"num_heads": 2})
    with pytest.raises(ConfigError, match=r"dtype='float32'.*bfloat16 with quantization=int8"):
        RandomLTX2(dtype="float32", quantization="int8")
