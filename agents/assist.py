"""Customer-service assist: a suggested reply, help-centre articles, and when to hand off.

Pure post-processing of a fused Result that has an ``intent`` output (a support turn; also
one whose intent task went unserved, e.g. in a language no intent model reads):

- **Template**: the reply template (``data/kb/templates.json``) of the fused intent, with
  the fused confidence behind it. An intent without a template (``oos``, or a label from a
  model with another label set) gets none.
- **Articles**: the ``kb`` task's retrieved articles, shown only when the intent is
  uncertain or out of scope (a confident intent has its template; articles would be noise).
- **Hand-off**: to a person when any of these holds (every one that holds is listed in
  ``handoff_reasons``):

  ``uncertain_intent``  no fused intent (models failed, or none reads the language), fusion
                        flagged it uncertain,
                        or its confidence is below ``handoff_below`` (0.5 by default,
                        ``STREAMFUSE_ASSIST_HANDOFF_BELOW``; on the validation splits it
                        maximises the mean of the out-of-scope hand-off rate and the in-scope
                        keep rate: ``streamfuse eval kb-retrieval`` prints that sweep)
  ``out_of_scope``      the intent is ``oos``, or has no template (another label set)
  ``needs_human``       the template says a person must act (fraud, lost card, ...)
  ``urgent``            the turn is urgent: an ``urgency`` model says so, or it shouts
                        (same test as the monitor's escalation rule, ``agents.alerts``)
  ``toxic``             a ``toxicity`` model flags it, or it contains abuse or profanity
  ``escalating``        see below

**Escalation from one turn.** The monitor calls a conversation escalating after several
negative or urgent turns in a row; fuse sees one turn and no history, so the turn must
carry the evidence itself. A turn is escalating when it

  1. asks for a person ("let me speak to a manager", "a real person") or threatens a
     complaint (complaint, ombudsman, lawyer, regulator), or
  2. is negative (fused sentiment, not uncertain) *and* says it is not the first contact
     ("I asked you before", "yet again", "the third time", "how many times", "nobody
     answered", "for weeks") or is angry ("ridiculous", "unacceptable", "fed up", ...).

Repeated *attempts* ("I tried several times", "wrong PIN too many times") are not
escalation, and neither is a negative turn about a serious intent (a stolen card is
``needs_human`` already). The monitor's conversation-level alert still fires on the
sequence of turns; this rule lets the assist act on the turn where the customer says it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import orjson

from agents.windows import is_urgent, message_sentiment
from streams.records import Assist, AssistArticle, Prediction, Result, TaskResult

TEMPLATES_PATH = Path(__file__).resolve().parent.parent / "data" / "kb" / "templates.json"
INTENT_TASK = "intent"
KB_TASK = "kb"
OOS_LABELS = frozenset({"oos"})
NON_TOXIC_LABELS = frozenset(
    {"non-toxic", "non_toxic", "not_toxic", "nontoxic", "neutral", "clean", "ok", "0"}
)

UNCERTAIN = "uncertain_intent"
OUT_OF_SCOPE = "out_of_scope"
NEEDS_HUMAN = "needs_human"
URGENT = "urgent"
TOXIC = "toxic"
ESCALATING = "escalating"
REASONS = (UNCERTAIN, OUT_OF_SCOPE, NEEDS_HUMAN, URGENT, TOXIC, ESCALATING)


def _words(*alternatives: str) -> re.Pattern[str]:
    return re.compile(r"\b(?:" + "|".join(alternatives) + r")\b", re.IGNORECASE)


_ASKS_FOR_PERSON = _words(
    r"(?:speak|talk|chat)\s+(?:to|with)\s+(?:a|an|the|your|some)?\s*(?:real\s+|actual\s+)?"
    r"(?:human|person|agent|manager|supervisor|someone|somebody)",
    r"real\s+person",
    r"human\s+being",
    r"(?:complain\w*|ombudsman|lawyers?|solicitors?|legal\s+action|regulator|sue\s+you)",
)
_NOT_FIRST_CONTACT = _words(
    r"(?:ask(?:ed|ing)?|told|tell(?:ing)?|writ(?:e|ing|ten)|contact(?:ed|ing)?|call(?:ed|ing)?|"
    r"chas(?:e|ed|ing)|messag(?:e|ed|ing)|e-?mail(?:ed|ing)?)\s+(?:you\s+|your\s+\w+\s+)?"
    r"(?:again|before|already|twice)",
    r"yet\s+again",
    r"(?:second|third|fourth|fifth|\d+(?:st|nd|rd|th))\s+time",
    r"how\s+many\s+times",
    r"no\s*(?:-\s*)?(?:body|one)\s+(?:has\s+|have\s+)?(?:answer|repl|respond|got\s+back|help|call)\w*",
    r"no\s+(?:response|reply|answer)",
    r"(?:for|in)\s+(?:weeks|months|ages)",
)
_ANGRY = _words(
    r"ridiculous",
    r"unacceptable",
    r"disgust\w*",
    r"outrage\w*",
    r"fed\s+up",
    r"sick\s+(?:and\s+tired\s+)?of",
    r"furious",
    r"appalling",
    r"pathetic",
    r"incompetent",
    r"useless",
    r"shocking",
    r"worst",
    r"a\s+joke",
)
# Abuse and profanity the toxicity models can miss (insults without profanity), and a floor
# for sources whose plan has no toxicity task.
_ABUSIVE = _words(
    r"f+u+c+k\w*",
    r"f\*+k\w*",
    r"shit\w*",
    r"bullshit",
    r"bastards?",
    r"bitch\w*",
    r"ass\s*holes?",
    r"arse\s*holes?",
    r"dick\s*heads?",
    r"wankers?",
    r"idiots?",
    r"morons?",
    r"scumbags?",
    r"screw\s+you",
    r"go\s+to\s+hell",
)
_NAME = re.compile(r"\s*[,\-–—]\s*\{customer_name\}|\{customer_name\}\s*[,\-–—]?\s*")


@dataclass(slots=True, frozen=True)
class Template:
    """One reply template (``data/kb/templates.json``)."""

    intent: str
    reply: str
    needs_human: bool = False
    urgency: str = "normal"  # low | normal | high


@functools.cache
def load_templates(path: Path = TEMPLATES_PATH) -> Mapping[str, Template]:
    """The reply templates by intent (read once per process)."""
    raw = orjson.loads(path.read_bytes())
    return {
        intent: Template(intent, t["reply"], bool(t.get("needs_human", False)), t.get("urgency", "normal"))
        for intent, t in raw["templates"].items()
    }


@dataclass(slots=True, frozen=True)
class AssistRules:
    """Thresholds of the assist; ``templates`` None means the bundled ones."""

    handoff_below: float = 0.5
    max_articles: int = 3
    templates: Mapping[str, Template] | None = None

    def template_map(self) -> Mapping[str, Template]:
        return self.templates if self.templates is not None else load_templates()


def fill_reply(reply: str, customer_name: str | None) -> str:
    """Fill ``{customer_name}``; without a name drop it and the comma or dash before it."""
    if customer_name and customer_name.strip():
        return reply.replace("{customer_name}", customer_name.strip())
    text = _NAME.sub("", reply).strip()
    return text[:1].upper() + text[1:]


def select_template(
    intent: TaskResult | None, templates: Mapping[str, Template]
) -> tuple[Template | None, float | None]:
    """The template of the fused intent, and the fused confidence behind it."""
    if intent is None or intent.label is None:
        return None, None
    return templates.get(intent.label), intent.score


def is_toxic(result: Result) -> bool:
    """A toxicity model flags the turn, or the text contains abuse or profanity."""
    out = result.outputs.get("toxicity")
    flagged = out is not None and out.label is not None and not out.uncertain
    if flagged and out.label.strip().lower() not in NON_TOXIC_LABELS:  # type: ignore[union-attr]
        return True
    return bool(_ABUSIVE.search(result.text))


def is_escalating(result: Result) -> bool:
    """The turn itself says the conversation is escalating (see the module docstring)."""
    text = result.text
    if _ASKS_FOR_PERSON.search(text):
        return True
    if message_sentiment(result) != "negative":
        return False
    return bool(_NOT_FIRST_CONTACT.search(text) or _ANGRY.search(text))


def handoff_reasons(
    result: Result, intent: TaskResult | None, template: Template | None, rules: AssistRules
) -> list[str]:
    """Every reason to hand this turn to a person, in :data:`REASONS` order."""
    reasons = []
    label = intent.label if intent is not None else None
    if label is None:  # no fused intent: its models failed or are missing, or none reads the language
        reasons.append(UNCERTAIN)
    elif label in OOS_LABELS or template is None:
        reasons.append(OUT_OF_SCOPE)
    elif intent.uncertain or intent.score is None or intent.score < rules.handoff_below:  # type: ignore[union-attr]
        reasons.append(UNCERTAIN)
    if template is not None and template.needs_human:
        reasons.append(NEEDS_HUMAN)
    if is_urgent(result):
        reasons.append(URGENT)
    if is_toxic(result):
        reasons.append(TOXIC)
    if is_escalating(result):
        reasons.append(ESCALATING)
    return reasons


def merge_articles(predictions: Iterable[Prediction], k: int = 3) -> list[AssistArticle]:
    """The retrieved articles of every ``kb`` model that answered: best score per article,
    best first (ties by id), at most ``k``."""
    best: dict[str, AssistArticle] = {}
    for p in predictions:
        if p.task != KB_TASK or p.error is not None or not p.extra:
            continue
        for a in p.extra.get("articles") or []:
            try:
                art = AssistArticle.model_validate(a)
            except ValueError:
                continue
            if art.id not in best or art.score > best[art.id].score:
                best[art.id] = art
    return sorted(best.values(), key=lambda a: (-a.score, a.id))[:k]


def build_assist(result: Result, articles: list[AssistArticle], rules: AssistRules) -> Assist:
    """The assist of one support turn (its Result has an ``intent`` output)."""
    intent = result.outputs.get(INTENT_TASK)
    template, confidence = select_template(intent, rules.template_map())
    reasons = handoff_reasons(result, intent, template, rules)
    unclear = UNCERTAIN in reasons or OUT_OF_SCOPE in reasons
    name = (result.meta or {}).get("customer_name")
    return Assist(
        intent=template.intent if template else None,
        reply=fill_reply(template.reply, name if isinstance(name, str) else None) if template else None,
        confidence=round(confidence, 4) if confidence is not None else None,
        handoff=bool(reasons),
        handoff_reasons=reasons,
        articles=articles if unclear else [],
    )


def post_process(result: Result, predictions: Iterable[Prediction], rules: AssistRules | None = None) -> None:
    """The assist step of fuse: the ``kb`` output gets its articles (``extra.articles``), and
    a turn with an ``intent`` output (or an unserved intent task) gets its :class:`Assist`.
    Changes ``result`` in place."""
    rules = rules or AssistRules()
    articles = merge_articles(predictions, rules.max_articles)
    kb = result.outputs.get(KB_TASK)
    if kb is not None and articles:
        kb.extra = {**(kb.extra or {}), "articles": [a.model_dump() for a in articles]}
    # a support turn whose intent could not be served (another language) goes to a person too
    unserved = any(u.task == INTENT_TASK for u in result.unserved)
    if INTENT_TASK in result.outputs or unserved:
        result.assist = build_assist(result, articles, rules)
