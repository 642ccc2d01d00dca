"""`transformers`: local folders or hub names, batched, greedy by default, on the GPU in bf16 when there is one.

Captions: any image-text-to-text model (`AutoModelForImageTextToText`: Qwen2-VL, LLaVA, BLIP-2, BLIP,
VisionEncoderDecoder, ...). Explanations: any causal or seq2seq LM (Mistral-7B-Instruct, Qwen2.5-Instruct, ...),
also from a GGUF file (``gguf_file=``). Chat templates are applied where the model has one.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import torch

from asap.auxtext.backends.base import Backend, GenContext, GenRequest, GenResult, load_image
from asap.auxtext.prompts import chat_messages
from asap.errors import BackendUnavailable

log = logging.getLogger(__name__)
PROMPT_MODES = ("auto", "chat", "text", "none")


def pick_device(device: str) -> torch.device:
    """`auto` -> cuda when present, else cpu."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def pick_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """`auto` -> bf16 on a GPU that has it (fp16 otherwise), fp32 on the CPU."""
    if dtype != "auto":
        return getattr(torch, dtype)
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


class TransformersBackend(Backend):
    """A Hugging Face model run in-process; see the module docstring."""

    def __init__(
        self,
        context: GenContext,
        model: str,
        gguf_file: str | None = None,
        model_name: str | None = None,
        batch_size: int = 8,
        device: str = "auto",
        dtype: str = "auto",
        prompt_mode: str = "auto",
        do_sample: bool = False,
        num_beams: int = 1,
        generate_kwargs: dict[str, Any] | None = None,
        model_kwargs: dict[str, Any] | None = None,
        trust_remote_code: bool = False,
        local_files_only: bool = False,
    ) -> None:
        super().__init__(context)
        if prompt_mode not in PROMPT_MODES:
            raise ValueError(f"prompt_mode must be one of {PROMPT_MODES}, got {prompt_mode!r}")
        if prompt_mode == "none" and context.task == "explanation":
            raise ValueError(
                "prompt_mode=none is for captioners without a prompt; explanations need the prompt"
            )
        self.model_path, self.gguf_file = str(model), gguf_file
        self._model_name = model_name or (f"{model}/{gguf_file}" if gguf_file else str(model))
        self.batch_size = batch_size
        self.device = pick_device(device)
        self.dtype = pick_dtype(dtype, self.device)
        self.prompt_mode = prompt_mode
        self.gen_kwargs = {"do_sample": do_sample, "num_beams": num_beams} | dict(generate_kwargs or {})
        self.model_kwargs = dict(model_kwargs or {})
        self.load_kwargs = {"trust_remote_code": trust_remote_code, "local_files_only": local_files_only}
        self._model: Any = None

    @property
    def model_name(self) -> str:
        return self._model_name

    def settings(self) -> dict[str, Any]:
        return (
            super().settings()
            | {"backend": "transformers", "prompt_mode": self.prompt_mode}
            | self.gen_kwargs
        )

    # ------------------------------------------------------------------ loading

    def load(self) -> None:
        if self._model is not None:
            return
        log.info("loading %s on %s (%s)", self.model_name, self.device, self.dtype)
        loader = self._load_vision if self.context.task == "caption" else self._load_text
        try:
            loader()
        except BaseException as err:
            self._model = None  # a half-loaded model is not loaded
            if isinstance(err, OSError):
                raise BackendUnavailable(f"cannot load model {self.model_name!r}: {err}") from err
            raise
        if "device_map" not in self.model_kwargs:
            self._model.to(self.device)
        self._model.eval()

    def _load_text(self) -> None:
        from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

        kw = self.load_kwargs | ({"gguf_file": self.gguf_file} if self.gguf_file else {})
        with gguf_parsed_once() if self.gguf_file else nullcontext():
            self.tokenizer = AutoTokenizer.from_pretrained(self.model_path, **kw)
            config = AutoConfig.from_pretrained(self.model_path, **kw)
            self.encoder_decoder = bool(getattr(config, "is_encoder_decoder", False))
            auto = AutoModelForSeq2SeqLM if self.encoder_decoder else AutoModelForCausalLM
            if self.gguf_file and not _accelerate_available():
                self._model = _load_gguf_without_accelerate(auto, config, self._gguf_path(), self.dtype)
            else:
                self._model = auto.from_pretrained(self.model_path, dtype=self.dtype, **kw, **self.model_kwargs)
        self._prepare_tokenizer(self.tokenizer)
        mode = self.prompt_mode
        self.mode = ("chat" if self.tokenizer.chat_template else "text") if mode == "auto" else mode

    def _load_vision(self) -> None:
        from transformers import AutoImageProcessor, AutoModelForImageTextToText, AutoProcessor, AutoTokenizer

        if self.gguf_file:
            raise ValueError("gguf_file is supported for text models (explanations) only")
        processor = AutoProcessor.from_pretrained(self.model_path, **self.load_kwargs)
        if hasattr(processor, "image_processor") and hasattr(processor, "tokenizer"):
            self.processor, self.tokenizer = processor, processor.tokenizer
            self.image_processor = processor.image_processor
        else:  # e.g. VisionEncoderDecoder: an image processor and a tokenizer saved side by side
            self.processor = None
            self.image_processor = AutoImageProcessor.from_pretrained(self.model_path, **self.load_kwargs)
            self.tokenizer = AutoTokenizer.from_pretrained(self.model_path, **self.load_kwargs)
        self._model = AutoModelForImageTextToText.from_pretrained(
            self.model_path, dtype=self.dtype, **self.load_kwargs, **self.model_kwargs
        )
        self.encoder_decoder = bool(getattr(self._model.config, "is_encoder_decoder", False))
        self._prepare_tokenizer(self.tokenizer)
        self.mode = self._vision_mode()

    def _vision_mode(self) -> str:
        if self.prompt_mode != "auto":
            if self.prompt_mode in ("chat", "text") and self.processor is None:
                raise ValueError(
                    f"prompt_mode={self.prompt_mode} needs a multimodal processor; {self.model_path} has none"
                )
            return self.prompt_mode
        if self.processor is None:
            return "none"
        return "chat" if getattr(self.processor, "chat_template", None) else "text"

    def _prepare_tokenizer(self, tokenizer: Any) -> None:
        if not self.encoder_decoder:
            tokenizer.padding_side = "left"  # decoder-only: generation continues from the right end
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token

    def _gguf_path(self) -> str:
        local = Path(self.model_path) / str(self.gguf_file)
        if local.is_file():
            return str(local)
        from huggingface_hub import hf_hub_download

        return hf_hub_download(
            self.model_path, str(self.gguf_file), local_files_only=self.load_kwargs["local_files_only"]
        )

    # ------------------------------------------------------------------ generation

    def generate(self, requests: Sequence[GenRequest]) -> list[GenResult]:
        self.load()
        if self.context.task == "explanation":
            return self._run([r.prompt for r in requests], None)
        images: list[Any] = []
        results: list[GenResult | None] = []
        for r in requests:
            try:
                images.append(load_image(r.image_path))  # type: ignore[arg-type]
                results.append(None)
            except OSError as err:
                results.append(GenResult.failed(err))
        good = [r.prompt for r, res in zip(requests, results, strict=True) if res is None]
        generated = iter(self._run(good, images) if good else [])
        return [res if res is not None else next(generated) for res in results]

    def _run(self, prompts: list[str], images: list[Any] | None) -> list[GenResult]:
        inputs = self._inputs(prompts, images)
        inputs = {k: _to(v, self._model.device, self._model.dtype) for k, v in inputs.items()}
        settings = {
            "max_new_tokens": self.context.max_new_tokens,
            "pad_token_id": self.tokenizer.pad_token_id,
        }
        with torch.inference_mode():
            out = self._model.generate(**inputs, **settings, **self.gen_kwargs)
        return self._decode(out.cpu(), inputs.get("input_ids"))

    def _inputs(self, prompts: list[str], images: list[Any] | None) -> dict[str, Any]:
        system = self.context.prompt.system
        if images is None:
            if self.mode == "chat":
                convs = [chat_messages(p, system) for p in prompts]
                return dict(
                    self.tokenizer.apply_chat_template(
                        convs,
                        add_generation_prompt=True,
                        tokenize=True,
                        padding=True,
                        return_tensors="pt",
                        return_dict=True,
                    )
                )
            return dict(self.tokenizer(prompts, padding=True, return_tensors="pt"))
        if self.mode == "none":
            return dict(self.image_processor(images=images, return_tensors="pt"))
        if self.mode == "chat":
            prompts = [
                self.processor.apply_chat_template(
                    chat_messages(p, system, image=True), add_generation_prompt=True, tokenize=False
                )
                for p in prompts
            ]
        return dict(self.processor(images=images, text=prompts, padding=True, return_tensors="pt"))

    def _decode(self, out: torch.Tensor, input_ids: torch.Tensor | None) -> list[GenResult]:
        if input_ids is not None and not self.encoder_decoder:
            prompt_len = input_ids.shape[1]
            if out.shape[1] >= prompt_len and torch.equal(out[:, :prompt_len], input_ids.cpu()):
                out = out[:, prompt_len:]
        pad = self.tokenizer.pad_token_id
        texts = self.tokenizer.batch_decode(out, skip_special_tokens=True)
        counts = (out != pad).sum(dim=1).tolist() if pad is not None else [out.shape[1]] * len(texts)
        return [GenResult(output=t.strip(), tokens=int(n)) for t, n in zip(texts, counts, strict=True)]

    def close(self) -> None:
        self._model = None
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def _to(value: Any, device: torch.device, dtype: torch.dtype) -> Any:
    if not isinstance(value, torch.Tensor):
        return value
    return value.to(device, dtype=dtype) if value.is_floating_point() else value.to(device)


def _accelerate_available() -> bool:
    return importlib.util.find_spec("accelerate") is not None


@contextmanager
def gguf_parsed_once() -> Iterator[None]:
    """Within the block, each GGUF file is parsed once and gguf's tensor-name map built once per architecture.

    transformers parses the file anew for the tokenizer, the config and the tensors (each ~3 s on a CPU for
    SmolLM2's 49k-token vocabulary, the metadata being read string by string) and rebuilds the name map for every
    submodule while matching tensor names (~3 s for SmolLM2's 400 modules). It imports both from `gguf` when called,
    so memoised stand-ins there are what it gets; the reader only reads (a read-only memory map), so sharing it
    changes nothing in what is loaded. Restored on exit.
    """
    if importlib.util.find_spec("gguf") is None:  # transformers says what to install
        yield
        return
    import gguf

    reader, name_map = gguf.GGUFReader, gguf.get_tensor_name_map
    gguf.GGUFReader = functools.lru_cache(maxsize=None)(reader)
    gguf.get_tensor_name_map = functools.lru_cache(maxsize=None)(name_map)
    try:
        yield
    finally:
        gguf.GGUFReader, gguf.get_tensor_name_map = reader, name_map


def _load_gguf_without_accelerate(auto: Any, config: Any, gguf_path: str, dtype: torch.dtype) -> Any:
    """transformers' `from_pretrained(gguf_file=)` wants `accelerate`; without it, build the model from the GGUF
    config and load the de-quantised tensors ourselves (same conversion code, no device map)."""
    from transformers.initialization import no_init_weights
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

    # every weight comes from the file (a missing one is an error below): no random init
    with no_init_weights():
        model = auto.from_config(config, dtype=dtype)
    tensors = load_gguf_checkpoint(gguf_path, return_tensors=True, model_to_load=model)["tensors"]
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    tied = set(getattr(model, "_tied_weights_keys", None) or {})
    missing = [k for k in missing if k not in tied and not k.endswith("lm_head.weight")]
    if missing or unexpected:
        raise BackendUnavailable(
            f"GGUF {gguf_path}: missing tensors {missing[:5]}, unexpected {unexpected[:5]}"
        )
    model.tie_weights()
    return model
