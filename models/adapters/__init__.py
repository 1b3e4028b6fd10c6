"""Model adapters: each turns a catalog :class:`~models.registry.ModelSpec` into a loaded
:class:`~models.base.Adapter` (a batch of texts in, a batch of outputs out)."""

from __future__ import annotations

from collections.abc import Callable

from models.base import Adapter
from models.registry import ModelSpec


def _vader(spec: ModelSpec) -> Adapter:
    from models.adapters.vader import VaderAdapter

    return VaderAdapter(spec)


def _minilm_head(spec: ModelSpec) -> Adapter:
    from models.adapters.minilm_head import MiniLMHeadAdapter

    return MiniLMHeadAdapter(spec)


def _tfidf_linear(spec: ModelSpec) -> Adapter:
    from models.adapters.tfidf_linear import TfidfLinearAdapter

    return TfidfLinearAdapter(spec)


def _tickers(spec: ModelSpec) -> Adapter:
    from models.adapters.tickers import TickersAdapter

    return TickersAdapter(spec)


def _minilm_lora(spec: ModelSpec) -> Adapter:
    from models.adapters.minilm_lora import build

    return build(spec)


def _kb_retrieval(spec: ModelSpec) -> Adapter:
    from models.adapters.kb import KBRetrievalAdapter

    return KBRetrievalAdapter(spec)


def _toxicity_svm(spec: ModelSpec) -> Adapter:
    from models.adapters.toxicity import ToxicitySvmAdapter

    return ToxicitySvmAdapter(spec)


def _wordlist(spec: ModelSpec) -> Adapter:
    from models.adapters.toxicity import WordListAdapter

    return WordListAdapter(spec)


def _lm_lexicon(spec: ModelSpec) -> Adapter:
    from models.adapters.lm_lexicon import LMLexiconAdapter

    return LMLexiconAdapter(spec)


def _test_controlled(spec: ModelSpec) -> Adapter:
    from models.adapters.testing import ControlledAdapter

    return ControlledAdapter(spec)


# Factories import lazily so that, e.g., a recognize worker using only the TF-IDF domain
# classifier never pays for importing torch.
ADAPTERS: dict[str, Callable[[ModelSpec], Adapter]] = {
    "vader": _vader,
    "minilm_head": _minilm_head,
    "tfidf_linear": _tfidf_linear,
    "tickers": _tickers,
    "minilm_lora": _minilm_lora,
    "minilm_full": _minilm_lora,  # a full fine-tune loads the same way (models.lora.load_model)
    "mpnet_lora": _minilm_lora,  # LoRA on all-mpnet-base-v2: the artifact's config names its base
    "kb_retrieval": _kb_retrieval,
    "toxicity_svm": _toxicity_svm,
    "wordlist": _wordlist,
    "lm_lexicon": _lm_lexicon,
    "test_controlled": _test_controlled,
}


def build_adapter(spec: ModelSpec) -> Adapter:
    """Load the model a catalog entry describes."""
    try:
        factory = ADAPTERS[spec.adapter]
    except KeyError:
        raise KeyError(
            f"model {spec.id!r} names unknown adapter {spec.adapter!r}; known: {sorted(ADAPTERS)}"
        ) from None
    return factory(spec)
