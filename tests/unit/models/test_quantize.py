"""int8 dynamic quantisation switches and the quantiser itself (tiny modules, no artifacts)."""

import pytest
import torch

from models.encoder import env_flag, int8_encoder_enabled, int8_lora_enabled, quantize_int8


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1", True), ("true", True), ("On", True), ("0", False), ("no", False), ("off", False)],
)
def test_env_flag_reads_the_settings_spellings(monkeypatch, value, expected):
    monkeypatch.setenv("STREAMFUSE_X_FLAG", value)
    assert env_flag("STREAMFUSE_X_FLAG", not expected) is expected


def test_env_flag_falls_back_to_the_default(monkeypatch):
    monkeypatch.delenv("STREAMFUSE_X_FLAG", raising=False)
    assert env_flag("STREAMFUSE_X_FLAG", True) is True
    monkeypatch.setenv("STREAMFUSE_X_FLAG", "maybe")
    assert env_flag("STREAMFUSE_X_FLAG", False) is False


def test_int8_is_cpu_only_and_follows_the_switches(monkeypatch):
    monkeypatch.delenv("STREAMFUSE_INT8_LORA", raising=False)
    monkeypatch.delenv("STREAMFUSE_INT8_ENCODER", raising=False)
    assert int8_encoder_enabled("cpu") is False  # default off (costs accuracy)
    monkeypatch.setenv("STREAMFUSE_INT8_ENCODER", "1")
    assert int8_encoder_enabled("cpu") is True
    assert int8_encoder_enabled("cuda") is False  # cuda runs fp16 instead
    monkeypatch.delenv("STREAMFUSE_INT8_NER", raising=False)
    assert int8_lora_enabled("cpu") is False  # off by default (batch-dependent scores)
    assert int8_lora_enabled("cpu", "token") is False
    monkeypatch.setenv("STREAMFUSE_INT8_LORA", "0")
    monkeypatch.setenv("STREAMFUSE_INT8_NER", "1")
    assert int8_lora_enabled("cpu") is False
    assert int8_lora_enabled("cpu", "token") is True
    assert int8_lora_enabled("cuda", "token") is False
    monkeypatch.setenv("STREAMFUSE_INT8_LORA", "1")
    assert int8_lora_enabled("cuda") is False


def test_quantize_int8_replaces_linears_and_stays_close_to_fp32():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.GELU(), torch.nn.Linear(128, 8)).eval()
    x = torch.randn(16, 64)
    with torch.inference_mode():
        ref = model(x)
        q = quantize_int8(model)
        out = q(x)
    linears = [m for m in q.modules() if isinstance(m, torch.nn.Linear)]
    dynamic = [m for m in q.modules() if isinstance(m, torch.ao.nn.quantized.dynamic.Linear)]
    assert not linears and len(dynamic) == 2
    assert out.shape == ref.shape
    # int8 weights: small absolute error, same argmax almost everywhere
    assert torch.max(torch.abs(out - ref)).item() < 0.05 * torch.max(torch.abs(ref)).item() + 0.05
    assert (out.argmax(1) == ref.argmax(1)).float().mean().item() >= 0.9
