"""Typed configuration of the model, losses, ablation and optimiser: the one home of every default.

These dataclasses are the schema of the Hydra groups `model`, `loss`, `ablation` and `optim` (registered by
`asap.conf`): each preset in conf/<group>/ states only what differs from them, and OmegaConf type-checks every
override when the config is composed. `ASAPLitModule(model=dict, loss=dict, ablation=dict, optim=dict)` (and a
checkpoint's hyper-parameters) converts each plain dict with `from_dict`, which fills in these defaults and
rejects unknown keys and bad choices with one clear `ConfigError`.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from asap.errors import ConfigError
from asap.losses.total import LossWeights

T = TypeVar("T")

MODALITIES = ("both", "text", "image")
SCHEDULES = ("paper", "official")
MGCA_FORMS = ("paper", "official")
LOSS_FORMS = ("paper", "official")  # conf/mode/{paper,official}.yaml pick one for every loss term
VISION_BLOCKS = ("hammer", "asap")
BOX_SAMPLES = ("all", "boxed")
IMAGE_STEMS = ("patch", "conv")
POS_EMBED_INITS = ("random", "sincos")


@dataclass
class ImageEncoderConfig:
    """A timm ViT: architecture `name` with size overrides; weights only when `pretrained` is set."""

    name: str = "vit_base_patch16_224"
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    drop_path_rate: float = 0.0
    # null: random init (no download); "hub": timm's weights for `name`; otherwise a local weight file
    pretrained: str | None = None
    # patch: ViT's linear patch embedding (pretrained ViTs) | conv: stride-2 3x3 conv-BN-ReLU stages down to the
    # patch size, then a 1x1 projection (ViT-C, Xiao et al. 2021: trains from scratch far faster on small data)
    stem: str = "patch"
    # initial position embedding of a randomly initialised encoder: random (timm's, std 0.02) | sincos (2-D
    # sin-cos values, then learnt; MAE); loaded weights (pretrained, ALBEF, a checkpoint) replace it
    pos_embed_init: str = "random"


@dataclass
class TextEncoderConfig:
    """A transformers BERT; its first `text_layers` layers encode text, the rest become the text-biased encoder."""

    # BertConfig keyword arguments (the architecture; pretrained weights must fit it)
    bert: dict[str, Any] = field(default_factory=dict)
    text_layers: int = 6
    # null: random init from `bert` (no download); otherwise a hub name or local folder of a BERT
    pretrained: str | None = None


@dataclass
class MomentumConfig:
    """ALBEF/HAMMER momentum encoders, at their values: EMA copies, feature queues, token distillation."""

    enabled: bool = False
    decay: float = 0.995
    queue_size: int = 65536
    distill_alpha: float = 0.4  # weight of the momentum targets (HAMMER `alpha`), ramped up over epoch 0


@dataclass
class ModelConfig:
    image_size: int = 256
    patch_size: int = 16
    tokenizer: str = "bert-base-uncased"
    max_text_len: int = 128
    image_encoder: ImageEncoderConfig = field(default_factory=ImageEncoderConfig)
    text_encoder: TextEncoderConfig = field(default_factory=TextEncoderConfig)
    embed_dim: int = 256  # contrastive space (eq. 1-2), HAMMER's/ALBEF's
    temperature: float = 0.07  # initial learnable tau
    # subtract the batch mean before L2-normalising the contrastive features (asap.models.alignment): lets
    # randomly initialised encoders, whose [CLS] features start nearly identical, leave log(B); training only.
    # Off for pretrained encoders, whose [CLS] features already differ (the paper, ALBEF)
    center_contrastive: bool = False
    delta_init: float = 0.5  # learnable delta of eq. 4 and M_it (ASAP's code: UtilsB, binary head and IED)
    # a second learnable scalar for the multi-label head's input, M_it = delta_mlc F_v + F_t (ASAP's code:
    # UtilsC, init 0.5 as UtilsB); false: one delta for both heads (paper)
    multilabel_delta: bool = False
    # E_mm^v's block: hammer (cross-attention of LN(image) to LN(text), residual on the image; HAMMER's
    # it_cross_attn) | asap (self-attention on LN(image), then cross-attention to LN(text), residual on LN(image);
    # ASAP's Multilmodelattention)
    vision_block: str = "hammer"
    dropout: float = 0.1  # before the token detector (HAMMER)
    # std of the truncated-normal init of the parts ASAP adds (multimodal encoders, heads, projections); null:
    # derived from the width (`new_parts_std`); a number overrides it
    init_std: float | None = None
    momentum: MomentumConfig = field(default_factory=MomentumConfig)
    # ALBEF_4M.pth / ALBEF.pth to start from (null: none); recorded in the run's hyper-parameters
    albef_checkpoint: str | None = None
    # torch.compile the four encoders in place (ASAPModel.compile_encoders); weights and checkpoints unchanged
    compile: bool = False

    @property
    def num_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2

    @property
    def new_parts_std(self) -> float:
        """`init_std`, or by default HAMMER's 0.02 for width 768 scaled to the width D, 0.02 * sqrt(768 / D), rounded
        to one significant figure: 0.02 at 768 (asap_base, HAMMER), 0.05 at 128 (tiny), the values the model
        configs used to state. At width 128 HAMMER's 0.02 leaves F_v (the pooled vision-biased feature) 23x smaller
        than F_t in M_it = delta F_v + F_t (width 768: 7x)."""
        if self.init_std is not None:
            return self.init_std
        return float(f"{0.02 * math.sqrt(768 / self.image_encoder.embed_dim):.0e}")

    @property
    def text_width(self) -> int:
        return int(self.text_encoder.bert.get("hidden_size", 768))

    @property
    def fusion_layers(self) -> int:
        return int(self.text_encoder.bert.get("num_hidden_layers", 12)) - self.text_encoder.text_layers


@dataclass
class MGCAConfig:
    form: str = "paper"  # paper: eq. 9 on the post-softmax map; official: BCE on pre-softmax scores
    # text-biased fusion layers whose cross-attention is guided (negative: from the end)
    layers: list[int] = field(default_factory=lambda: [-1])


@dataclass
class DefectsConfig:
    """The official code's defects (docs/fidelity.md), each reproducible on its own; all off = our fixes.

    Each switch changes exactly one loss term, and only in official mode (the paper-mode terms have no such line).
    """

    # ASAP models/ASAP.py l. 262: `sim_i2p_targets = alpha * F.softmax(sim_p2i_m, dim=1) + ...` takes the
    # image->explanation soft target from the explanation->image momentum similarities (term aux_vlc)
    i2p_target_typo: bool = False
    # ASAP models/ASAP.py l. 100-101: `self.cap_queue = normalize(self.text_queue)` (prom_queue likewise): the
    # caption and explanation queues start as copies of the text queue (term aux_vlc, needs momentum)
    aux_queues_from_text: bool = False
    # ASAP models/ASAP.py l. 341-342: `for pos in fake_text_pos: attentionMapGT[:,:,pos] = 1` marks every
    # sample's manipulated-token columns in every sample of the batch (term mgca)
    mgca_batch_tokens: bool = False
    # ASAP models/ASAP.py l. 340-346: the guidance columns span the text with [CLS] (text_embeds.size(1)) while the
    # manipulated positions index the tokens without it, so each mark lands one column left, on [CLS]'s side
    # (term mgca)
    mgca_cls_shift: bool = False
    # ASAP models/ASAP.py l. 346: the BCE mean runs over every column, padding tokens included (term mgca; their
    # rows are then computed in E_t and E_mm^t, as the official code does)
    mgca_padding: bool = False
    # ASAP models/ASAP.py l. 163-171 (get_pre_patch_loss): ignored cells get logit 0 and target 0 instead of being
    # dropped, so each adds log 2 to the mean over all cells (term pmm)
    pmm_ignored_log2: bool = False


@dataclass
class LossConfig(LossWeights):
    """Eq. 13's weights (the fields of `LossWeights`, flat: `loss.alpha`) plus the forms, MGCA and box samples."""

    mgca: MGCAConfig = field(default_factory=MGCAConfig)
    # which samples the box terms (supp. §6.1) regress: all (HAMMER: no-box ones to the zero box [0, 0, 0, 0],
    # which the IoU protocol scores as a hit once every corner is < 1e-4) | boxed (only pairs with an edited face)
    box_samples: str = "all"
    # paper: eq. 1-3 (i2t/t2i + i2c/c2i + i2e/e2i, means over the anchors) | official: HAMMER's loss_MAC (i2t, t2i,
    # i2i, t2t) and ASAP's auxiliary terms (i2c, c2i, c2c, i2p, p2i, p2p), each a mean over the batch
    contrastive_form: str = "paper"
    # paper: eq. 4-5, one logit, BCE | official: ASAP's 2-way head (itm_head_m), cross-entropy, label 0 = real
    ied_form: str = "paper"
    # paper: eq. 12, mean over the labelled cells | official: BCE mean over all B x N cells (get_pre_patch_loss)
    pmm_form: str = "paper"
    defects: DefectsConfig = field(default_factory=DefectsConfig)

    def loss_weights(self) -> LossWeights:
        """The eq. 13 weights alone."""
        return LossWeights(**{f.name: getattr(self, f.name) for f in dataclasses.fields(LossWeights)})


@dataclass
class AblationConfig:
    """Which ASAP parts run (paper Tables 2-6). Off means not computed, not only unweighted."""

    caption: bool = True  # i2c/c2i contrastive terms (eq. 1)
    explanation: bool = True  # i2e/e2i contrastive terms (eq. 2)
    ied: bool = True  # image-explanation detection (eq. 4-5)
    mgca: bool = True  # manipulation-guided cross-attention loss (eq. 7-9)
    pmm: bool = True  # patch manipulation modelling (eq. 10-12)
    hnp: bool = True  # hard negative patches in PMM (eq. 10)
    # inputs of the binary / multi-label heads: both = delta F_v + F_t; text = F_t (HAMMER); image = F_v
    modality: str = "both"


@dataclass
class OptimConfig:
    """The paper's recipe (§4.1; conf/optim/paper.yaml) with the official one's warm-up values (conf/optim/official.yaml
    switches to them); asap.models.optim."""

    lr: float = 1e-4  # the one lr (paper); the image side's lr_img (official groups)
    weight_decay: float = 0.02
    betas: tuple[float, float] = (0.9, 0.999)
    # paper: linear warm-up over warmup_steps, cosine per step to min_lr;
    # official: from warmup_lr in warmup_stages raises every warmup_stage_steps during epoch 0, cosine per epoch
    schedule: str = "paper"
    warmup_steps: int = 1000
    min_lr: float = 1e-6
    warmup_lr: float = 1e-6  # the official warm-up: HAMMER's / ASAP's configs/train.yaml
    warmup_stages: int = 10
    warmup_stage_steps: int = 100
    # null: one group; "official": the official code's image side at `lr`, every other parameter at rest_lr;
    # or a dict for `asap.models.optim.build_optimizer` ({name: {prefixes: [...], lr: ...}, rest: {lr: ...}})
    param_groups: Any = None
    rest_lr: float | None = None
    # false: no decay on biases, norms, scalars, position embeddings, [CLS] (paper); true: every parameter (official)
    decay_all: bool = False

    def validate(self) -> None:
        _check_choice("optim.schedule", self.schedule, SCHEDULES)
        groups = self.param_groups
        if isinstance(groups, str) and groups != "official":
            raise ConfigError(f"optim.param_groups must be null, 'official' or a mapping, got {groups!r}")
        if (groups == "official") != (self.rest_lr is not None):
            raise ConfigError(
                "optim.rest_lr (the lr of every non-image parameter) goes with param_groups=official"
            )


def from_dict(cls: type[T], data: Mapping[str, Any] | None, where: str) -> T:
    """Build dataclass `cls` from `data`, recursing into dataclass fields; unknown keys raise ConfigError."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"`{where}` must be a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"unknown key(s) {unknown} in `{where}`; valid keys: {sorted(fields)}")
    kwargs = {}
    for name, value in data.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            kwargs[name] = from_dict(hint, value, where=f"{where}.{name}")
        else:
            kwargs[name] = _check_type(value, hint, f"{where}.{name}")
    return cls(**kwargs)


def _check_type(value: Any, hint: Any, where: str) -> Any:
    """Light type check of scalars (ints accepted for floats, lists for tuples)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in typing.get_args(hint):
            return None
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
        origin = typing.get_origin(hint)
    expected = {bool: bool, int: int, float: (int, float), str: str}.get(hint)
    if expected is not None:
        if (isinstance(value, bool) and hint is not bool) or not isinstance(value, expected):
            raise ConfigError(f"`{where}` must be {hint.__name__}, got {value!r}")
        return float(value) if hint is float else value
    if origin is tuple:
        return tuple(value)
    if origin is list:
        return list(value)
    if origin is dict:
        return dict(value)
    return value


def _check_choice(where: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{where} must be one of {choices}, got {value!r}")


@dataclass
class ASAPConfig:
    """Everything the LightningModule is built from."""

    model: ModelConfig
    loss: LossConfig
    ablation: AblationConfig
    optim: OptimConfig

    @classmethod
    def from_plain(
        cls,
        model: Mapping[str, Any],
        loss: Mapping[str, Any],
        ablation: Mapping[str, Any],
        optim: Mapping[str, Any],
    ) -> ASAPConfig:
        config = cls(
            model=from_dict(ModelConfig, model, "model"),
            loss=from_dict(LossConfig, loss, "loss"),
            ablation=from_dict(AblationConfig, ablation, "ablation"),
            optim=from_dict(OptimConfig, optim, "optim"),
        )
        config.validate()
        return config

    def validate(self) -> None:
        m, a = self.model, self.ablation
        _check_choice("ablation.modality", a.modality, MODALITIES)
        _check_choice("model.image_encoder.stem", m.image_encoder.stem, IMAGE_STEMS)
        _check_choice("model.image_encoder.pos_embed_init", m.image_encoder.pos_embed_init, POS_EMBED_INITS)
        _check_choice("loss.mgca.form", self.loss.mgca.form, MGCA_FORMS)
        _check_choice("loss.box_samples", self.loss.box_samples, BOX_SAMPLES)
        _check_choice("model.vision_block", m.vision_block, VISION_BLOCKS)
        for name in ("contrastive_form", "ied_form", "pmm_form"):
            _check_choice(f"loss.{name}", getattr(self.loss, name), LOSS_FORMS)
        self._check_defects()
        if m.image_size % m.patch_size:
            raise ConfigError(
                f"model.image_size {m.image_size} is not a multiple of patch_size {m.patch_size}"
            )
        if m.image_encoder.embed_dim != m.text_width:
            raise ConfigError(
                f"model.image_encoder.embed_dim ({m.image_encoder.embed_dim}) must equal the BERT hidden_size "
                f"({m.text_width}): M_it = delta F_v + F_t adds the two"
            )
        if not 0 < m.text_encoder.text_layers < int(m.text_encoder.bert.get("num_hidden_layers", 12)):
            raise ConfigError("model.text_encoder.text_layers must leave at least one layer on each side")
        for layer in self.loss.mgca.layers:
            if not -m.fusion_layers <= layer < m.fusion_layers:
                raise ConfigError(
                    f"loss.mgca.layers: {layer} is not one of the {m.fusion_layers} fusion layers"
                )
        self.optim.validate()

    def _check_defects(self) -> None:
        """A defect switch on where its term has no official line to reproduce is a config error, not a no-op."""
        loss, d, momentum = self.loss, self.loss.defects, self.model.momentum.enabled
        official_momentum = "loss.contrastive_form=official and model.momentum.enabled (soft targets, queues)"
        needs = {
            "i2p_target_typo": (official_momentum, loss.contrastive_form == "official" and momentum),
            "aux_queues_from_text": (official_momentum, loss.contrastive_form == "official" and momentum),
            "mgca_batch_tokens": ("loss.mgca.form=official", loss.mgca.form == "official"),
            "mgca_cls_shift": ("loss.mgca.form=official", loss.mgca.form == "official"),
            "mgca_padding": ("loss.mgca.form=official", loss.mgca.form == "official"),
            "pmm_ignored_log2": ("loss.pmm_form=official", loss.pmm_form == "official"),
        }
        for name, (condition, met) in needs.items():
            if getattr(d, name) and not met:
                raise ConfigError(f"loss.defects.{name} reproduces an official-code line; it needs {condition}")
