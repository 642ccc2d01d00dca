"""The one key map between the official state dicts (ALBEF, HAMMER, ASAP) and ours, in both directions.

Used by `model.albef_checkpoint` (asap.models.albef) and by `src/convert.py` (asap.pipeline.convert). Each `Rule`
pairs an official key (or prefix, ending in ".") with ours; the longest matching prefix wins, so the table reads the
same way from either side. Official modules with an ALBEF-style momentum copy (`visual_encoder_m`, ...) get a
second rule each, ours under `momentum.copies.`. Kinds:
  copy       the tensor as it is (a ViT position embedding is interpolated when our grid differs: "derived")
  attention  nn.MultiheadAttention <-> our MultiHeadAttention: in_proj_weight / in_proj_bias (3D, ...) split into
             query / key / value (rows in that order, as torch's in_proj), out_proj.* <-> output.*
  queue      ALBEF/HAMMER keep (E, K) queues, ours are (K, E): transposed
  pointer    queue_ptr (1,) <-> ()
The table and what cannot be mapped: docs/checkpoints.md.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import Tensor

from asap.models.image_encoder import resize_pos_embed
from asap.models.text_biased_encoder import BERT_LAYER_KEYS

SOURCES = ("albef", "hammer", "asap")
MOMENTUM = "momentum.copies."
ATTENTION_PARTS = ("query", "key", "value")  # the row blocks of nn.MultiheadAttention's in_proj, in order
IN_PROJ = ("in_proj_weight", "in_proj_bias")


@dataclass(frozen=True)
class Rule:
    official: str  # a key, or a prefix ending in "."
    ours: str
    kind: str = "copy"  # copy | attention | queue | pointer
    # the official model also keeps `<first name>_m.<rest>` (ours: momentum.copies.<ours>)
    momentum: bool = False


# ALBEF's encoders, projections, temperature and queues (models/model_pretrain.py); HAMMER and ASAP keep them
ENCODER_RULES = (
    Rule("visual_encoder.", "image_encoder.vit.", momentum=True),
    Rule("vision_proj.", "alignment.vision_proj.", momentum=True),
    Rule("text_proj.", "alignment.text_proj.", momentum=True),
    Rule("temp", "alignment.temperature"),
    Rule("text_encoder.bert.embeddings.", "text_encoder.bert.embeddings.", momentum=True),
    Rule("image_queue", "momentum.image_queue", "queue"),
    Rule("text_queue", "momentum.text_queue", "queue"),
    Rule("queue_ptr", "momentum.queue_ptr", "pointer"),
)
# HAMMER's heads, token classifier and vision-biased encoder (LPAA) (models/HAMMER.py, xbert.py)
HAMMER_RULES = (
    Rule("itm_head.", "binary_head."),
    Rule("cls_head.", "multilabel_head."),
    Rule("bbox_head.", "box_head."),
    Rule("text_encoder.classifier.", "token_head.", momentum=True),
    Rule("norm_layer_it_cross_atten.", "vision_biased_encoder.cross_attention_norm."),
    Rule("it_cross_attn.", "vision_biased_encoder.cross_attention.", "attention"),
    Rule("norm_layer_aggr.", "vision_biased_encoder.aggregator_norm."),
    Rule("aggregator.", "vision_biased_encoder.aggregator.", "attention"),
    Rule("cls_token_local", "vision_biased_encoder.aggregator_query"),
)
# ASAP's additions (models/ASAP.py). Its it_cross_attn is Multilmodelattention: self-attention over the image
# tokens, then cross-attention to the text. Targets marked (official mode) are the official-mode modules' names.
ASAP_RULES = (
    Rule("it_cross_attn.selfatten.", "vision_biased_encoder.self_attention.", "attention"),  # (official mode)
    Rule("it_cross_attn.crossatten.", "vision_biased_encoder.cross_attention.", "attention"),
    Rule("itm_head_m.", "ied_head."),  # IED's 2-way head (official mode; ours is 1-way otherwise)
    Rule("patch_head.", "patch_head."),
    Rule("UtilsB", "delta"),  # binary head and IED: t_cls + UtilsB * F_v
    Rule("UtilsC", "multilabel_delta"),  # (official mode) multi-label head: t_cls + UtilsC * F_v
    Rule("cap_queue", "momentum.caption_queue", "queue"),
    Rule("prom_queue", "momentum.explanation_queue", "queue"),
)
# official tensors with no counterpart by design: (source, pattern, reason)
DROPPED = (
    (SOURCES, r"\.embeddings\.position_ids$", "constant buffer 0..n-1 (transformers rebuilds it)"),
    (("albef",), r"^text_encoder(_m)?\.cls\.", "ALBEF's masked-language-model head (pre-training only)"),
    (
        ("albef",),
        r"^itm_head\.",
        "ALBEF's linear ITM head (pre-training only; HAMMER's binary head is an MLP)",
    ),
)
# our tensors the official layouts do not keep: (pattern, reason)
OURS_ONLY = ((r"^momentum\.copies\.alignment\.temperature$", "unused (the momentum targets use `temp`)"),)


def key_rules(source: str, text_layers: int, num_layers: int) -> list[Rule]:
    """The rules of `source`, BERT's layers split at `text_layers` (of `num_layers`), momentum copies expanded."""
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
    rules = [*ENCODER_RULES, *bert_layer_rules(text_layers, num_layers)]
    if source == "hammer":
        rules += HAMMER_RULES
    if source == "asap":  # ASAP's it_cross_attn replaces HAMMER's single attention
        rules += [r for r in HAMMER_RULES if r.official != "it_cross_attn."] + list(ASAP_RULES)
    return rules + [momentum_rule(r) for r in rules if r.momentum]


def bert_layer_rules(text_layers: int, num_layers: int) -> list[Rule]:
    """BERT layer i < text_layers -> E_t's layer i; the rest -> E_mm^t's layer i - text_layers (renamed)."""
    rules = []
    for i in range(num_layers):
        src = f"text_encoder.bert.encoder.layer.{i}."
        if i < text_layers:
            rules.append(Rule(src, src, momentum=True))
            continue
        dst = f"text_biased_encoder.layers.{i - text_layers}."
        rules += [Rule(f"{src}{a}.", f"{dst}{b}.", momentum=True) for a, b in BERT_LAYER_KEYS.items()]
    return rules


def momentum_rule(rule: Rule) -> Rule:
    head, dot, rest = rule.official.partition(".")
    return Rule(f"{head}_m{dot}{rest}", MOMENTUM + rule.ours, rule.kind)


def _match(key: str, rules: list[Rule], side: str) -> tuple[Rule, str] | None:
    """The rule whose `side` key or prefix matches `key` (longest prefix), and the rest of `key`."""
    best = None
    for rule in rules:
        pattern = getattr(rule, side)
        hit = key.startswith(pattern) if pattern.endswith(".") else key == pattern
        if hit and (best is None or len(pattern) > len(getattr(best, side))):
            best = rule
    return None if best is None else (best, key[len(getattr(best, side)) :])


def ours_for(key: str, rules: list[Rule]) -> tuple[Rule, list[str]] | None:
    """Our key(s) for official `key`: three for an in_proj tensor (query, key, value), else one; None if none."""
    found = _match(key, rules, "official")
    if found is None:
        return None
    rule, rest = found
    if rule.kind != "attention":
        return rule, [rule.ours + rest]
    if rest in IN_PROJ:
        return rule, [f"{rule.ours}{part}.{rest.removeprefix('in_proj_')}" for part in ATTENTION_PARTS]
    if rest.startswith("out_proj."):
        return rule, [rule.ours + "output." + rest.removeprefix("out_proj.")]
    return None


def official_for(key: str, rules: list[Rule]) -> tuple[Rule, str, int | None] | None:
    """The official key for our `key`, and the in_proj block it fills (0, 1, 2) for a query/key/value tensor."""
    found = _match(key, rules, "ours")
    if found is None:
        return None
    rule, rest = found
    if rule.kind != "attention":
        return rule, rule.official + rest, None
    part, _, tail = rest.partition(".")
    if part in ATTENTION_PARTS and tail in ("weight", "bias"):
        return rule, f"{rule.official}in_proj_{tail}", ATTENTION_PARTS.index(part)
    if part == "output":
        return rule, f"{rule.official}out_proj.{tail}", None
    return None


def _shape(x: Tensor) -> tuple[int, ...]:
    return tuple(x.shape)


@dataclass
class KeyReport:
    """What a conversion did with every tensor; `problems` are what stops it without --allow-missing."""

    source: str
    direction: str  # "import" (official -> ours) or "export" (ours -> official)
    mapped: list[tuple[str, str]] = field(default_factory=list)  # (from, to)
    derived: list[tuple[str, str]] = field(default_factory=list)  # (to, how)
    dropped: list[tuple[str, str]] = field(default_factory=list)  # (from, reason)
    unmapped: list[tuple[str, str]] = field(default_factory=list)  # (from, why): no target, or shapes differ
    missing: list[str] = field(default_factory=list)  # target keys that got no value

    def problems(self, missing_is_problem: bool = True) -> list[str]:
        """One line per unmapped or shape-mismatched tensor (and per target left without a value)."""
        lines = [f"{key}: {why}" for key, why in self.unmapped]
        if missing_is_problem:
            lines += [f"{key}: no tensor in the source maps to it" for key in self.missing]
        return lines

    def counts(self) -> dict[str, int]:
        return {
            name: len(getattr(self, name)) for name in ("mapped", "derived", "dropped", "unmapped", "missing")
        }


def import_official(
    state: Mapping[str, Tensor],
    source: str,
    target: Mapping[str, Tensor],
    text_layers: int,
    num_layers: int,
) -> tuple[dict[str, Tensor], KeyReport]:
    """Official `state` -> our tensors for a model whose state dict is `target` (shapes, dtypes), and the report.

    Our momentum copies the source lacks (ALBEF's token head, the momentum temperature) start as the online ones.
    """
    rules = key_rules(source, text_layers, num_layers)
    report = KeyReport(source, "import")
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        reason = dropped_reason(source, key)
        if reason is not None:
            report.dropped.append((key, reason))
            continue
        found = ours_for(key, rules) if isinstance(value, Tensor) else None
        if found is None:
            report.unmapped.append((key, f"no rule in the {source} key map"))
            continue
        rule, keys = found
        values = value.chunk(len(keys)) if len(keys) > 1 else [value]
        names = ATTENTION_PARTS if len(keys) > 1 else (None,)
        for our_key, part, name in zip(keys, values, names, strict=True):
            _import_one(key, our_key, part, rule, target, out, report, block=name)
    for our_key in target:  # momentum copies without a source: a copy of the online tensor
        online = our_key.removeprefix(MOMENTUM)
        if our_key not in out and our_key.startswith(MOMENTUM) and online in target:
            out[our_key] = out.get(online, target[online]).clone()
            report.derived.append((our_key, f"copy of the online {online}"))
    report.missing = [k for k in target if k not in out]
    return out, report


def _import_one(
    key: str,
    our_key: str,
    value: Tensor,
    rule: Rule,
    target: Mapping[str, Tensor],
    out: dict[str, Tensor],
    report: KeyReport,
    block: str | None,
) -> None:
    """One tensor into `out` (fitted to our shape), or a line in the report; `block`: its in_proj row block."""
    if our_key not in target:
        report.unmapped.append(
            (key, f"its target {our_key} is not in this model (check the model overrides)")
        )
        return
    want = target[our_key]
    fitted, how = value, None if block is None else f"the {block} rows of nn.MultiheadAttention's in_proj"
    if rule.kind == "queue" and value.dim() == 2:
        fitted = value.T  # (E, K) -> (K, E)
    elif rule.kind == "pointer":
        fitted = value.reshape(want.shape) if value.numel() == 1 else value
    elif our_key.endswith("vit.pos_embed") and value.dim() == 3 and value.shape != want.shape:
        grid = math.isqrt(want.shape[1] - 1)
        fitted, how = resize_pos_embed(value, (grid, grid)), f"interpolated from {_shape(value)}"
    if fitted.shape != want.shape:
        shown = key if block is None else f"{key} ({block} rows)"
        report.unmapped.append((shown, f"shape {_shape(fitted)} vs {our_key} {_shape(want)}"))
        return
    out[our_key] = fitted.to(want.dtype).contiguous()
    if how:
        report.derived.append((our_key, f"{key}: {how}"))
    else:
        report.mapped.append((key, our_key))


def dropped_reason(source: str, key: str) -> str | None:
    for sources, pattern, reason in DROPPED:
        if source in sources and re.search(pattern, key):
            return reason
    return None


def export_official(
    ours: Mapping[str, Tensor], source: str, text_layers: int, num_layers: int
) -> tuple[dict[str, Tensor], KeyReport]:
    """Our state dict -> the official `source` layout (inverse of `import_official`), and the report."""
    rules = key_rules(source, text_layers, num_layers)
    report = KeyReport(source, "export")
    out: dict[str, Tensor] = {}
    blocks: dict[str, dict[int, Tensor]] = {}  # in_proj key -> {block: tensor}
    for key, value in ours.items():
        reason = next((r for pattern, r in OURS_ONLY if re.search(pattern, key)), None)
        found = None if reason else official_for(key, rules)
        if reason is not None:
            report.dropped.append((key, reason))
        elif found is None:
            report.unmapped.append((key, f"no counterpart in the official {source} layout"))
        else:
            rule, official, block = found
            if block is not None:
                blocks.setdefault(official, {})[block] = value
                continue
            out[official] = _export_value(rule, value)
            report.mapped.append((key, official))
    for official, parts in blocks.items():
        if len(parts) != len(ATTENTION_PARTS):
            report.unmapped.append((official, f"only {sorted(parts)} of query/key/value present"))
            continue
        out[official] = torch.cat([parts[i] for i in range(len(ATTENTION_PARTS))])
        report.derived.append(
            (official, "query, key, value rows joined into nn.MultiheadAttention's in_proj")
        )
    for key in [k for k in out if k.endswith(".embeddings.position_embeddings.weight")]:
        ids = key.replace("position_embeddings.weight", "position_ids")
        out[ids] = torch.arange(out[key].shape[0])[None]  # (1, max_len), as xbert's buffer
        report.derived.append((ids, "0..n-1 (BERT's position ids buffer)"))
    return out, report


def _export_value(rule: Rule, value: Tensor) -> Tensor:
    if rule.kind == "queue":
        return value.T.contiguous()  # (K, E) -> (E, K)
    if rule.kind == "pointer":
        return value.reshape(1)
    return value


def official_state_dict(checkpoint: object, path: str) -> dict[str, Tensor]:
    """The state dict of an official checkpoint: `{'model': ...}` or bare, a DDP `module.` prefix removed."""
    if isinstance(checkpoint, dict) and "state_dict" in checkpoint and "hyper_parameters" in checkpoint:
        raise ValueError(
            f"{path} is a checkpoint of this project, not an official one (--to-official exports it)"
        )
    state = checkpoint.get("model", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict) or not state:
        raise ValueError(f"{path} holds no state dict (expected {{'model': {{...}}}} or a bare state dict)")
    if all(isinstance(k, str) and k.startswith("module.") for k in state):
        state = {k.removeprefix("module."): v for k, v in state.items()}
    return state
