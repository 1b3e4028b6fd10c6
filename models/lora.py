"""LoRA (peft) models on a packaged encoder: sequence classification and token classification (NER).

A packaged base encoder (``models.bases``: all-MiniLM-L6-v2 unless the recipe's ``base`` says
``mpnet``, all-mpnet-base-v2; both loaded offline) gets low-rank adapters on every attention
and feed-forward projection plus a fresh head:

- ``sequence``: mean-pooled hidden states -> dropout -> linear -> tempered softmax;
- ``token``: the hidden state of each word's first sub-token, concatenated with a small
  learned embedding of the word's shape (the encoder is uncased, so capitalisation is
  otherwise invisible to it) -> linear over IOB2 tags.

Artifacts (``models/artifacts/<id>/``): ``weights.safetensors`` holds the LoRA matrices
(``lora.*``) and the head (``head.*``), ``model.json`` the LoRA configuration, labels,
temperature and training metadata. At load time the adapters are merged into the base
weights, so inference costs exactly one forward pass of the base.

With ``"full": True`` in the hyper-parameters the same classifier is trained with every
encoder weight trainable instead of adapters (a full fine-tune, ``kind: minilm_full``): its
artifact holds the whole encoder (``encoder.*``, about 90 MB), so it is a full checkpoint
and goes to the local artifact directory (``models.registry.local_artifacts_dir``).
"""

from __future__ import annotations

import os
import random
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch
from torch import nn

from models.bases import DEFAULT_BASE

N_SHAPES = 6
SHAPE_DIM = 16


# --- word shapes and word splitting (NER) ----------------------------------------------


def word_shape(word: str) -> int:
    """0 lower, 1 Capitalised, 2 ALLCAPS, 3 mixed case, 4 has a digit, 5 no letters."""
    if any(c.isdigit() for c in word):
        return 4
    letters = [c for c in word if c.isalpha()]
    if not letters:
        return 5
    if all(c.islower() for c in letters):
        return 0
    if all(c.isupper() for c in letters):
        return 2 if len(letters) > 1 else 1
    if letters[0].isupper() and all(c.islower() for c in letters[1:]):
        return 1
    return 3


_LEAD = "\"'([{`"
_TRAIL = "\"')]},;:!?`"


def split_words(text: str) -> list[tuple[str, int, int]]:
    """Split raw text into CoNLL-like words with character offsets ``(word, start, end)``.

    Whitespace separates words; leading quotes/brackets, trailing punctuation, a trailing
    possessive ``'s`` and a sentence-style trailing period (not in "U.S.") are split off,
    as CoNLL-2003 tokenises them.
    """
    out: list[tuple[str, int, int]] = []
    for m in re.finditer(r"\S+", text):
        s, e = m.start(), m.end()
        head: list[tuple[int, int]] = []
        tail: list[tuple[int, int]] = []
        while e - s > 1 and text[s] in _LEAD:
            head.append((s, s + 1))
            s += 1
        while e - s > 1:
            if text[e - 1] in _TRAIL or (text[e - 1] == "." and "." not in text[s : e - 1] and e - s > 2):
                tail.append((e - 1, e))
                e -= 1
            elif e - s > 2 and text[e - 2 : e].lower() == "'s":
                tail.append((e - 2, e))
                e -= 2
            else:
                break
        for a, b in [*head, (s, e), *reversed(tail)]:
            out.append((text[a:b], a, b))
    return out


def iob_to_spans(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """Entity spans ``(type, first word, last word + 1)`` from IOB2 tags (an ``I-`` that
    does not continue an entity of its type starts one, as seqeval reads it)."""
    spans: list[tuple[str, int, int]] = []
    cur: list[Any] | None = None
    for i, tag in enumerate(tags):
        prefix, _, typ = tag.partition("-")
        if prefix == "I" and cur is not None and cur[0] == typ:
            cur[2] = i + 1
            continue
        if cur is not None:
            spans.append((cur[0], cur[1], cur[2]))
            cur = None
        if prefix in ("B", "I"):
            cur = [typ, i, i + 1]
    if cur is not None:
        spans.append((cur[0], cur[1], cur[2]))
    return spans


@cache
def iob_transitions(tag_names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """IOB2's hard constraints as additive scores: ``(start, transition)``, 0 where allowed
    and -inf where not (``I-X`` only after ``B-X`` or ``I-X``, never first). Cached per tag
    set: the infer path decodes every sentence with the same one."""
    inside = [t[2:] if t.startswith("I-") else None for t in tag_names]
    start = np.array([-np.inf if typ else 0.0 for typ in inside])
    trans = np.zeros((len(tag_names), len(tag_names)))
    for b, typ in enumerate(inside):
        if typ is None:
            continue
        for a, prev in enumerate(tag_names):
            if prev == "O" or prev[2:] != typ:
                trans[a, b] = -np.inf
    return start, trans


def decode_iob(probs: np.ndarray, tag_names: Sequence[str]) -> list[str]:
    """The most probable tag sequence that is valid IOB2 (Viterbi over the per-word
    probabilities under :func:`iob_transitions`).

    Per-word argmax can give ``O I-ORG``, which seqeval reads as a new entity: a stray
    fragment. On CoNLL-2003's validation split the three-epoch lora-conll's entity F1 was
    0.906 with argmax and 0.919 with this decoder (no parameter is tuned: the constraints
    are IOB2's).
    """
    if len(probs) == 0:
        return []
    start, trans = iob_transitions(tuple(tag_names))
    logp = np.log(np.clip(probs, 1e-12, 1.0))
    score = start + logp[0]
    back = np.zeros((len(logp), len(tag_names)), dtype=np.int64)
    for i in range(1, len(logp)):
        cand = score[:, None] + trans
        back[i] = cand.argmax(0)
        score = cand.max(0) + logp[i]
    path = [int(score.argmax())]
    for i in range(len(logp) - 1, 0, -1):
        path.append(int(back[i, path[-1]]))
    return [tag_names[k] for k in reversed(path)]


# --- the model -------------------------------------------------------------------------


def base_path(base: str = DEFAULT_BASE) -> str:
    """The folder of the packaged base encoder ``base`` (``models.bases``)."""
    from models.bases import base_path as _path

    return str(_path(base))


def load_tokenizer(base: str = DEFAULT_BASE):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(base_path(base), local_files_only=True)


def base_of(hp_or_config: dict[str, Any]) -> str:
    """The base encoder a recipe's hyper-parameters or an artifact's config name (artifacts
    written before there was a choice are MiniLM's)."""
    return str(hp_or_config.get("base", DEFAULT_BASE))


def build_lora_encoder(lora: dict[str, Any], base: str = DEFAULT_BASE):
    """The packaged base encoder with fresh (trainable) LoRA adapters; the base stays frozen."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # the checkpoint's unused pooler weights are expected
    encoder = AutoModel.from_pretrained(base_path(base), local_files_only=True, add_pooling_layer=False)
    cfg = LoraConfig(
        r=int(lora["r"]),
        lora_alpha=int(lora["lora_alpha"]),
        lora_dropout=float(lora["lora_dropout"]),
        target_modules=lora["target_modules"],
        bias="none",
    )
    return get_peft_model(encoder, cfg)


def build_full_encoder(base: str = DEFAULT_BASE):
    """The packaged base encoder with every weight trainable (a full fine-tune)."""
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    return AutoModel.from_pretrained(base_path(base), local_files_only=True, add_pooling_layer=False)


def build_encoder(hp: dict[str, Any]):
    """The encoder a recipe trains: the whole base (``hp["full"]``) or LoRA adapters on it."""
    base = base_of(hp)
    return build_full_encoder(base) if hp.get("full") else build_lora_encoder(hp["lora"], base)


class LoraSequenceClassifier(nn.Module):
    """The base encoder (LoRA-adapted or fully fine-tuned), mean pooling over real tokens, linear head."""

    def __init__(self, encoder: nn.Module, n_labels: int, dropout: float = 0.1):
        super().__init__()
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(encoder.config.hidden_size, n_labels)

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return self.head(self.dropout(pooled))


class LoraTokenClassifier(nn.Module):
    """LoRA MiniLM; each sub-token's state + its word's shape embedding -> tag logits."""

    def __init__(self, encoder: nn.Module, n_labels: int, dropout: float = 0.1):
        super().__init__()
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        self.shape_emb = nn.Embedding(N_SHAPES, SHAPE_DIM)
        self.head = nn.Linear(encoder.config.hidden_size + SHAPE_DIM, n_labels)

    def forward(self, input_ids, attention_mask, shapes):
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        feats = torch.cat([hidden, self.shape_emb(shapes)], dim=-1)
        return self.head(self.dropout(feats))


def head_tensors(model: nn.Module) -> dict[str, np.ndarray]:
    """The head's tensors (``head.W``, ``head.b`` and, for NER, ``head.shape_emb``)."""
    out = {
        "head.W": model.head.weight.detach().cpu().numpy().astype(np.float32),
        "head.b": model.head.bias.detach().cpu().numpy().astype(np.float32),
    }
    if isinstance(model, LoraTokenClassifier):
        out["head.shape_emb"] = model.shape_emb.weight.detach().cpu().numpy().astype(np.float32)
    return out


def lora_tensors(model: nn.Module) -> dict[str, np.ndarray]:
    from peft import get_peft_model_state_dict

    sd = get_peft_model_state_dict(model.encoder)
    return {f"lora.{k}": v.detach().cpu().numpy().astype(np.float32) for k, v in sd.items()}


def encoder_tensors(model: nn.Module) -> dict[str, np.ndarray]:
    """Every encoder weight (``encoder.*``): the artifact of a full fine-tune."""
    return {
        f"encoder.{k}": v.detach().cpu().numpy().astype(np.float32)
        for k, v in model.encoder.state_dict().items()
    }


def model_tensors(model: nn.Module) -> dict[str, np.ndarray]:
    """What a trained model's artifact holds: the encoder (full fine-tune) or its LoRA
    matrices, plus the head."""
    body = lora_tensors(model) if hasattr(model.encoder, "peft_config") else encoder_tensors(model)
    return body | head_tensors(model)


def _full_encoder(tensors: dict[str, np.ndarray], base: str) -> nn.Module:
    encoder = build_full_encoder(base)
    state = {
        k[len("encoder.") :]: torch.from_numpy(v) for k, v in tensors.items() if k.startswith("encoder.")
    }
    result = encoder.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise ValueError(
            f"encoder weights do not fit {base}: missing {result.missing_keys[:3]}, "
            f"unexpected {result.unexpected_keys[:3]}; train the model again"
        )
    return encoder


def _lora_encoder(config: dict[str, Any], tensors: dict[str, np.ndarray], merge: bool) -> nn.Module:
    from peft import set_peft_model_state_dict

    encoder = build_lora_encoder(config["lora"], base_of(config))
    lora_sd = {k[len("lora.") :]: torch.from_numpy(v) for k, v in tensors.items() if k.startswith("lora.")}
    result = set_peft_model_state_dict(encoder, lora_sd)
    missing = [k for k in getattr(result, "unexpected_keys", []) if "lora_" in k]
    if missing:
        raise ValueError(f"LoRA weights do not fit the model: {missing[:3]}")
    return encoder.merge_and_unload() if merge else encoder


def load_model(config: dict[str, Any], tensors: dict[str, np.ndarray], merge: bool = True) -> nn.Module:
    """Rebuild a trained model from its artifact, in eval mode: the base encoder (``base``,
    MiniLM unless the config names another) + LoRA weights (merged into the base weights when
    ``merge``) + head, or, for a full fine-tune (``kind: minilm_full``), the saved encoder +
    head."""
    if config.get("kind") == "minilm_full":
        encoder = _full_encoder(tensors, base_of(config))
    else:
        encoder = _lora_encoder(config, tensors, merge)
    n = len(config["labels"] if config["head"] == "sequence" else config["tags"])
    model: nn.Module
    if config["head"] == "sequence":
        model = LoraSequenceClassifier(encoder, n)
    else:
        model = LoraTokenClassifier(encoder, n)
        model.shape_emb.weight.data = torch.from_numpy(tensors["head.shape_emb"].copy())
    model.head.weight.data = torch.from_numpy(tensors["head.W"].copy())
    model.head.bias.data = torch.from_numpy(tensors["head.b"].copy())
    model.eval()
    model.requires_grad_(False)
    return model


# --- batching --------------------------------------------------------------------------


def encode_texts(tokenizer, texts: Sequence[str], max_length: int, device: torch.device):
    enc = tokenizer(list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    return {k: v.to(device) for k, v in enc.items() if k in ("input_ids", "attention_mask")}


def word_positions(words: Sequence[str], word_ids: Sequence[int | None]) -> tuple[list[int], list[int]]:
    """For one tokenised sentence: each sub-token's word shape (``N_SHAPES - 1`` for special
    tokens) and each word's first sub-token (-1 when truncation cut the word away)."""
    shapes = [N_SHAPES - 1 if w is None else word_shape(words[w]) for w in word_ids]
    first = [-1] * len(words)
    for j, w in enumerate(word_ids):
        if w is not None and first[w] == -1:
            first[w] = j
    return shapes, first


def encode_words(
    tokenizer,
    words: Sequence[Sequence[str]],
    max_length: int,
    device: torch.device,
    tag_ids: Sequence[Sequence[int]] | None = None,
):
    """Tokenise pre-split sentences; returns the model inputs, the index of each word's
    first sub-token (-1 when truncated away) and, with ``tag_ids``, the label tensor
    (-100 except at first sub-tokens)."""
    enc = tokenizer(
        [list(w) for w in words],
        is_split_into_words=True,
        padding=True,
        truncation=True,
        max_length=max_length,
        return_tensors="pt",
    )
    n, length = enc["input_ids"].shape
    shapes = torch.full((n, length), N_SHAPES - 1, dtype=torch.long)
    labels = torch.full((n, length), -100, dtype=torch.long)
    first: list[list[int]] = []
    for i, ws in enumerate(words):
        row_shapes, firsts = word_positions(ws, enc.word_ids(i))
        shapes[i, : len(row_shapes)] = torch.as_tensor(row_shapes, dtype=torch.long)
        if tag_ids is not None:
            for w, j in enumerate(firsts):
                if j >= 0:
                    labels[i, j] = tag_ids[i][w]
        first.append(firsts)
    inputs = {
        "input_ids": enc["input_ids"].to(device),
        "attention_mask": enc["attention_mask"].to(device),
        "shapes": shapes.to(device),
    }
    return inputs, first, labels.to(device)


def _length_batches(lengths: Sequence[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Shuffled batches of similar-length items (sorted inside shuffled pools of 50
    batches), so little compute goes to padding while the order stays random."""
    idx = list(range(len(lengths)))
    rng.shuffle(idx)
    pool = batch_size * 50
    batches: list[list[int]] = []
    for a in range(0, len(idx), pool):
        chunk = sorted(idx[a : a + pool], key=lambda i: lengths[i])
        batches.extend(chunk[b : b + batch_size] for b in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches


# --- training --------------------------------------------------------------------------


@dataclass
class TrainResult:
    model: nn.Module
    best_epoch: int
    history: list[dict[str, Any]]
    val_logits: np.ndarray  # validation logits of the kept epoch (rows: texts or words)
    seconds: float


def _trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.named_parameters() if v.requires_grad}


def _optimizer(model: nn.Module, hp: dict[str, Any], total_steps: int):
    head, body = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (body if name.startswith("encoder.") else head).append(p)
    opt = torch.optim.AdamW(
        [
            {"params": body, "lr": float(hp["lr_encoder"] if hp.get("full") else hp["lr_lora"])},
            {"params": head, "lr": float(hp["lr_head"])},
        ],
        weight_decay=float(hp.get("weight_decay", 0.01)),
    )
    warmup = max(1, int(total_steps * float(hp.get("warmup", 0.06))))

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return opt, torch.optim.lr_scheduler.LambdaLR(opt, schedule)


class _Ticker:
    """Throttled progress messages (at most one every ``every`` seconds)."""

    def __init__(self, say: Callable[[str], None], every: float = 2.0):
        self.say, self.every, self.last = say, every, 0.0

    def __call__(self, msg: str, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self.last >= self.every:
            self.last = now
            self.say(msg)


def _fit(
    model: nn.Module,
    hp: dict[str, Any],
    lengths: list[int],
    seed: int,
    say: Callable[[str], None],
    batch_loss: Callable[[list[int]], torch.Tensor],
    validate: Callable[[], tuple[float, dict[str, float], np.ndarray, str]] | None,
    val_desc: str,
    stop_after: int | None = None,
) -> TrainResult:
    """The training loop both LoRA models share: length-bucketed batches, the optimizer
    and schedule of ``_optimizer``, gradient clipping, one validation pass per epoch, and
    the epoch with the best validation score kept.

    ``batch_loss(indices)`` is the loss of one batch; ``validate()`` returns the score to
    maximise, the metrics for the history, the validation logits and a summary line.
    Without ``validate`` (a refit on training + validation data) the last epoch is kept.
    ``stop_after`` ends training after that epoch while the learning-rate schedule still
    spans ``hp["epochs"]``, so a refit stops where the validation run's kept epoch did.
    """
    rng = random.Random(seed)
    epochs, bs = int(hp["epochs"]), int(hp["batch_size"])
    last = min(epochs, stop_after or epochs)  # the schedule spans `epochs`; a refit stops early
    shown = f"{last}" if last == epochs else f"{last} (of a {epochs}-epoch schedule)"
    steps_per_epoch = (len(lengths) + bs - 1) // bs
    opt, sched = _optimizer(model, hp, epochs * steps_per_epoch)
    tick = _Ticker(say)
    history: list[dict[str, Any]] = []
    best_score, best_epoch = float("-inf"), last  # without validation the last epoch is kept
    best_state: dict[str, torch.Tensor] = {}
    best_logits = np.zeros((0, 0), np.float32)
    t0 = time.monotonic()
    for epoch in range(1, last + 1):
        model.train()
        running = 0.0
        for step, batch in enumerate(_length_batches(lengths, bs, rng), 1):
            loss = batch_loss(batch)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            running = 0.98 * running + 0.02 * loss.item() if step > 1 else loss.item()
            el = time.monotonic() - t0
            tick(f"epoch {epoch}/{shown} step {step}/{steps_per_epoch} loss {running:.3f} {el:.0f}s")
        record = {"epoch": epoch, "train_loss": round(running, 4)}
        if validate is None:
            history.append(record | {"seconds": round(time.monotonic() - t0, 1)})
            tick(f"epoch {epoch}/{shown}: loss {running:.3f}", force=True)
            continue
        tick(f"epoch {epoch}/{shown}: validating on {val_desc}", force=True)
        score, metrics, logits, summary = validate()
        history.append({"epoch": epoch, **metrics} | record | {"seconds": round(time.monotonic() - t0, 1)})
        tick(f"epoch {epoch}: {summary}", force=True)
        if score > best_score:
            best_score, best_epoch, best_state, best_logits = score, epoch, _trainable_state(model), logits
    if best_state:  # without validation the model is already the last epoch's
        model.load_state_dict(best_state, strict=False)
    model.eval()
    return TrainResult(model, best_epoch, history, best_logits, time.monotonic() - t0)


def train_device() -> torch.device:
    """Where training runs: the GPU when there is one (``models.encoder.select_device``)."""
    from models.encoder import select_device

    return torch.device(select_device())


def train_sequence(
    texts: list[str],
    y: np.ndarray,
    val_texts: list[str],
    yv: np.ndarray,
    n_labels: int,
    hp: dict[str, Any],
    say: Callable[[str], None],
    seed: int,
    soft: np.ndarray | None = None,
    stop_after: int | None = None,
) -> TrainResult:
    """Fine-tune LoRA + head on (texts, y); keep the epoch with the best validation
    macro-F1. ``soft`` (one probability row per text), when given, replaces the one-hot
    targets in the loss; validation still scores the hard labels. With no validation
    texts (a refit) the epoch ``stop_after`` is kept (see ``_fit``)."""
    from sklearn.metrics import f1_score

    device = train_device()
    tok = load_tokenizer(base_of(hp))
    torch.manual_seed(seed)
    model = LoraSequenceClassifier(build_encoder(hp), n_labels).to(device)
    max_len = int(hp["max_length"])
    loss_fn = nn.CrossEntropyLoss()

    def batch_loss(batch: list[int]) -> torch.Tensor:
        enc = encode_texts(tok, [texts[i] for i in batch], max_len, device)
        target = y[batch] if soft is None else soft[batch]
        return loss_fn(model(**enc), torch.as_tensor(target, device=device))

    def validate() -> tuple[float, dict[str, float], np.ndarray, str]:
        logits = predict_sequence_logits(model, tok, val_texts, max_len, device)
        f1 = float(f1_score(yv, logits.argmax(1), average="macro"))
        acc = float((logits.argmax(1) == yv).mean())
        metrics = {"val_macro_f1": round(f1, 4), "val_accuracy": round(acc, 4)}
        return f1, metrics, logits, f"val macro-F1 {f1:.4f} acc {acc:.4f}"

    lengths = [len(t) for t in texts]
    check = validate if val_texts else None
    return _fit(model, hp, lengths, seed, say, batch_loss, check, str(len(val_texts)), stop_after)


@torch.inference_mode()
def predict_sequence_logits(
    model: nn.Module, tok, texts: Sequence[str], max_len: int, device: torch.device, batch_size: int = 64
) -> np.ndarray:
    was_training = model.training
    model.eval()
    out = np.zeros((len(texts), model.head.out_features), dtype=np.float32)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    for a in range(0, len(order), batch_size):
        idx = order[a : a + batch_size]
        enc = encode_texts(tok, [texts[i] for i in idx], max_len, device)
        out[idx] = model(**enc).float().cpu().numpy()
    model.train(was_training)
    return out


@torch.inference_mode()
def predict_word_logits(
    model: nn.Module,
    tok,
    words: Sequence[Sequence[str]],
    max_len: int,
    device: torch.device,
    batch_size: int = 64,
) -> list[np.ndarray]:
    """Per sentence, a (words x tags) array of first-sub-token logits (zeros, i.e. a
    uniform distribution, for words cut off by truncation)."""
    was_training = model.training
    model.eval()
    n_tags = model.head.out_features
    out: list[np.ndarray] = [np.zeros((0, n_tags), np.float32)] * len(words)
    order = sorted(range(len(words)), key=lambda i: sum(len(w) for w in words[i]))
    for a in range(0, len(order), batch_size):
        idx = order[a : a + batch_size]
        batch = [words[i] for i in idx]
        inputs, first, _ = encode_words(tok, batch, max_len, device)
        logits = model(**inputs).float().cpu().numpy()
        for k, i in enumerate(idx):
            rows = np.zeros((len(batch[k]), n_tags), np.float32)
            for w, j in enumerate(first[k]):
                if j >= 0:
                    rows[w] = logits[k, j]
            out[i] = rows
    model.train(was_training)
    return out


def train_token(
    words: list[list[str]],
    tags: list[list[int]],
    val_words: list[list[str]],
    val_tags: list[list[str]],
    tag_names: list[str],
    hp: dict[str, Any],
    say: Callable[[str], None],
    seed: int,
) -> TrainResult:
    """Fine-tune LoRA + token head; keep the epoch with the best validation entity F1
    (seqeval)."""
    from seqeval.metrics import f1_score

    from models.calibration import softmax

    device = train_device()
    tok = load_tokenizer(base_of(hp))
    torch.manual_seed(seed)
    model = LoraTokenClassifier(build_lora_encoder(hp["lora"], base_of(hp)), len(tag_names)).to(device)
    max_len = int(hp["max_length"])
    loss_fn = nn.CrossEntropyLoss(ignore_index=-100)

    def batch_loss(batch: list[int]) -> torch.Tensor:
        inputs, _, labels = encode_words(
            tok, [words[i] for i in batch], max_len, device, [tags[i] for i in batch]
        )
        logits = model(**inputs)
        return loss_fn(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1))

    def validate() -> tuple[float, dict[str, float], np.ndarray, str]:
        per_sent = predict_word_logits(model, tok, val_words, max_len, device)
        pred = [decode_iob(softmax(s), tag_names) for s in per_sent]
        f1 = float(f1_score(val_tags, pred))
        return f1, {"val_entity_f1": round(f1, 4)}, np.concatenate(per_sent), f"val entity F1 {f1:.4f}"

    lengths = [sum(len(w) for w in ws) for ws in words]
    return _fit(model, hp, lengths, seed, say, batch_loss, validate, f"{len(val_words)} sentences")
