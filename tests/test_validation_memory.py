"""Memory while validating: the optimizer state and the decoders leave the GPU when they are not needed."""

from __future__ import annotations

import pytest
import torch

from conftest import compose_cfg
from ltxtune.evaluation.settings import VideoSettings
from ltxtune.evaluation.videos import build_clips
from ltxtune.training.offload import optimizer_state_on_host
from ltxtune.training.run import train

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="moves tensors between a GPU and the host")


def test_offloading_the_optimizer_while_validating_changes_nothing_in_the_run(synthetic_root, tmp_path) -> None:
    common = ("validation.every=2", "validation_videos.num_steps=1", "validation_videos.num_prompts=1")
    train(compose_cfg(*common, data_root=synthetic_root), tmp_path / "kept")
    train(compose_cfg(*common, "validation.offload_optimizer=true", data_root=synthetic_root), tmp_path / "moved")
    assert (tmp_path / "kept" / "lora.safetensors").read_bytes() == (
        tmp_path / "moved" / "lora.safetensors"
    ).read_bytes()
    assert (tmp_path / "kept" / "metrics.jsonl").read_text().count('"val/loss":') == 3


def test_optimizer_state_on_the_cpu_stays_where_it_is() -> None:
    weight = torch.nn.Parameter(torch.ones(4))
    optimizer = torch.optim.AdamW([weight])
    weight.grad = torch.ones(4)
    optimizer.step()
    before = {k: v.clone() for k, v in optimizer.state[weight].items()}
    with optimizer_state_on_host(optimizer) as moved:
        assert moved == 0
    assert all(torch.equal(optimizer.state[weight][k], v) for k, v in before.items())


@pytest.mark.gpu
@needs_cuda
def test_the_optimizer_state_leaves_the_gpu_while_validating_and_comes_back_unchanged() -> None:
    weight = torch.nn.Parameter(torch.ones(1 << 20, device="cuda"))
    optimizer = torch.optim.AdamW([weight])
    weight.grad = torch.ones_like(weight)
    optimizer.step()
    before = {k: v.clone() for k, v in optimizer.state[weight].items() if v.dim()}
    allocated = torch.cuda.memory_allocated()
    with optimizer_state_on_host(optimizer) as moved:
        assert moved >= 2 * 4 * (1 << 20)
        assert torch.cuda.memory_allocated() <= allocated - 2 * 4 * (1 << 20)
    assert all(torch.equal(optimizer.state[weight][k], v) for k, v in before.items())
    assert optimizer.state[weight]["exp_avg"].device.type == "cuda"


@pytest.mark.gpu
@needs_cuda
def test_the_decoders_wait_in_host_memory_between_validations(synthetic_root, tmp_path) -> None:
    from test_sampling import setup

    _, strategy, model, batches = setup(synthetic_root, "strategy.with_audio=true")
    cuda = torch.device("cuda")
    batches = [b.to(cuda) for b in batches]
    videos = build_clips(VideoSettings(num_prompts=1, num_steps=1), batches, tmp_path)
    videos(model.to(cuda), lambda text: text, batches, strategy, 0)
    assert next(videos.decoders._video.parameters()).device.type == "cpu"
    assert next(videos.decoders._audio.vocoder.parameters()).device.type == "cpu"
