"""Full checkpoints: they live in the local artifact directory, the registry lists them only
where they are present, and a fully fine-tuned MiniLM round-trips through its artifact."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pytest

from models.recipes import RECIPES
from models.registry import ARTIFACTS_DIR, LOCAL_ARTIFACTS_ENV, ModelSpec, Registry, local_artifacts_dir


def _spec(**fields) -> ModelSpec:
    base = {"id": "full-x", "task": "fin_sentiment", "kind": "finetuned", "adapter": "minilm_full"}
    return ModelSpec(**(base | {"artifact": "full-x", "labels": ["a", "b"]} | fields))


def _catalog(tmp_path: Path, *specs: ModelSpec) -> Path:
    path = tmp_path / "catalog.json"
    path.write_bytes(orjson.dumps({"models": [s.model_dump(mode="json") for s in specs]}))
    return path


def test_the_local_directory_follows_the_variable(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv(LOCAL_ARTIFACTS_ENV, str(tmp_path))
    assert local_artifacts_dir() == tmp_path
    assert _spec(requires_local=True).artifact_path() == tmp_path / "full-x"
    assert _spec().artifact_path() == ARTIFACTS_DIR / "full-x"  # committed artifacts stay put


def test_a_full_checkpoint_is_listed_only_where_it_is_present(monkeypatch, tmp_path: Path) -> None:
    local = tmp_path / "local"
    monkeypatch.setenv(LOCAL_ARTIFACTS_ENV, str(local))
    committed = _spec(id="vader-fin", artifact=None)
    catalog = _catalog(tmp_path, _spec(requires_local=True), committed)

    assert [s.id for s in Registry.load(catalog, include_test=False)] == ["vader-fin"]
    with pytest.raises(KeyError, match=r"streamfuse train full-x.*STREAMFUSE_LOCAL_ARTIFACTS"):
        Registry.load(catalog, include_test=False).get("full-x")
    listing = Registry.load(catalog, include_test=False, include_absent=True)
    assert not listing.get("full-x").artifact_present()

    (local / "full-x").mkdir(parents=True)
    present = Registry.load(catalog, include_test=False)
    assert [s.id for s in present.for_task("fin_sentiment")] == ["full-x", "vader-fin"]


def test_the_full_recipe_writes_to_the_local_directory(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv(LOCAL_ARTIFACTS_ENV, str(tmp_path))
    recipe = RECIPES["ft-fin"]
    assert recipe.artifact_dir() == tmp_path / "ft-fin"
    assert recipe.spec_fields()["requires_local"] is True
    assert RECIPES["lora-fin"].artifact_dir() == ARTIFACTS_DIR / "lora-fin"
    assert "requires_local" not in RECIPES["lora-fin"].spec_fields()


def test_tests_never_see_a_developers_checkpoints() -> None:
    # tests/conftest.py points the variable at a folder that holds nothing, as in CI
    assert not Registry.load(include_test=False, include_unserved=True).get("lora-fin").requires_local
    assert "ft-fin" not in Registry.load(include_test=False, include_unserved=True)


def test_a_full_fine_tune_round_trips_through_its_artifact(monkeypatch, tmp_path: Path) -> None:
    import torch

    from models import lora
    from models.adapters import build_adapter
    from models.artifacts_io import write_artifact

    texts = ["profit rose sharply", "the loss widened", "shares were flat", "sales jumped"] * 2
    y = np.array([1, 0, 0, 1] * 2)
    hp = {"full": True, "epochs": 1, "batch_size": 4, "max_length": 16, "lr_encoder": 5e-5, "lr_head": 1e-3}
    base = lora.build_full_encoder().state_dict()
    res = lora.train_sequence(texts, y, texts[:4], y[:4], 2, hp, lambda _: None, seed=0)

    tensors = lora.model_tensors(res.model)
    assert not any(k.startswith("lora.") for k in tensors)
    trained = {k[len("encoder.") :]: v for k, v in tensors.items() if k.startswith("encoder.")}
    assert trained.keys() == base.keys()  # the whole encoder, which training changed
    assert any(not np.allclose(trained[k], base[k].numpy()) for k in base)

    monkeypatch.setenv(LOCAL_ARTIFACTS_ENV, str(tmp_path))
    config = {"kind": "minilm_full", "head": "sequence", "labels": ["a", "b"], "max_length": 16}
    write_artifact(tmp_path / "full-x", config | {"temperature": 1.0}, tensors)
    adapter = build_adapter(_spec(requires_local=True))
    expected = lora.predict_sequence_logits(res.model, lora.load_tokenizer(), texts, 16, torch.device("cpu"))
    probs = adapter.predict_proba(texts)
    np.testing.assert_allclose(probs, torch.softmax(torch.from_numpy(expected), -1).numpy(), atol=1e-5)
    assert [o.label for o in adapter.predict(texts)] == [["a", "b"][k] for k in expected.argmax(1)]
