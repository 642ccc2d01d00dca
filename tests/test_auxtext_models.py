"""Real transformers code paths, offline: the SmolLM2-135M GGUF explains texts end to end through the command; tiny
random-weight captioners (a chat LLaVA and a prompt-less VisionEncoderDecoder) built here caption images."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from asap.auxtext import GenContext, GenerationJob, PromptSpec, run_generation
from asap.auxtext.backends.hf import TransformersBackend, gguf_parsed_once
from asap.auxtext.prompts import DEFAULT_CAPTION_PROMPT, DEFAULT_EXPLANATION_PROMPT
from asap.data.aux_cache import AuxTextCache
from asap.errors import BackendUnavailable

ROOT = Path(__file__).resolve().parents[1]
WORDS = "a the man woman picture of caption this give in crowd photo city waves".split()
SPECIAL = ["<pad>", "<s>", "</s>", "<unk>", "<image>"]
CHAT = (
    "{% for m in messages %}<s>{{ m['role'] }} {% if m['content'] is string %}{{ m['content'] }}{% else %}"
    "{% for c in m['content'] %}{% if c['type'] == 'image' %}<image>{% else %}{{ c['text'] }}{% endif %}"
    "{% endfor %}{% endif %}</s>{% endfor %}{% if add_generation_prompt %}<s>assistant {% endif %}"
)


def make_data(root: Path, n: int = 3, swap: bool = True) -> Path:
    (root / "DGM4/metadata").mkdir(parents=True)
    records = []
    for i in range(n):
        Image.new("RGB", (40 + 7 * i, 30), (60 * i, 100, 200)).save(root / f"DGM4/{i}.jpg")
        records.append(
            {
                "id": i,
                "image": f"DGM4/{i}.jpg",
                "text": f"The man {i} waves to a crowd in the city.",
                "fake_cls": "orig",
                "fake_image_box": [],
                "fake_text_pos": [],
            }
        )
    if swap:  # a text swap sharing image 0
        records.append(records[0] | {"id": 9, "text": "A woman waves.", "fake_cls": "text_swap"})
    (root / "DGM4/metadata/train.json").write_text(json.dumps(records))
    return root


def tiny_tokenizer():  # noqa: ANN201
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(SPECIAL + WORDS)}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.decoder = decoders.WordPiece(prefix="##")
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        extra_special_tokens={"image_token": "<image>"},
    )


def tiny_llava(folder: Path) -> Path:
    """A random-weight LLaVA (CLIP vision tower, Llama text model) with a chat template."""
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    torch.manual_seed(0)
    tok = tiny_tokenizer()
    vision = CLIPVisionConfig(
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        image_size=32,
        patch_size=8,
        projection_dim=16,
    )
    text = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=128,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=SPECIAL.index("<image>"),
        vision_feature_layer=-1,
    )
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
        tokenizer=tok,
        patch_size=8,
        vision_feature_select_strategy="full",
        chat_template=CHAT,
    )
    LlavaForConditionalGeneration(config).save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def tiny_vision_encoder_decoder(folder: Path) -> Path:
    """A random-weight ViT + GPT-2 captioner (no prompt), image processor and tokenizer saved side by side."""
    from transformers import (
        GPT2Config,
        VisionEncoderDecoderConfig,
        VisionEncoderDecoderModel,
        ViTConfig,
        ViTImageProcessor,
    )

    torch.manual_seed(0)
    tok = tiny_tokenizer()
    encoder = ViTConfig(
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        image_size=32,
        patch_size=8,
    )
    decoder = GPT2Config(
        vocab_size=len(tok),
        n_embd=16,
        n_layer=1,
        n_head=2,
        n_positions=64,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )
    config = VisionEncoderDecoderConfig.from_encoder_decoder_configs(encoder, decoder)
    config.decoder_start_token_id, config.pad_token_id, config.eos_token_id = 1, 0, 2
    model = VisionEncoderDecoderModel(config=config)
    model.generation_config.decoder_start_token_id = 1
    model.generation_config.pad_token_id, model.generation_config.eos_token_id = 0, 2
    model.save_pretrained(folder)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def caption_job(root: Path, name: str) -> GenerationJob:
    return GenerationJob(
        data_root=root,
        metadata=root / "DGM4/metadata/train.json",
        task="caption",
        output=root / f"{name}.jsonl",
    )


@pytest.mark.parametrize(
    "build", [tiny_llava, tiny_vision_encoder_decoder], ids=["llava-chat", "vision-enc-dec"]
)
def test_tiny_captioners_run_the_caption_code_path(build, tmp_path: Path) -> None:  # noqa: ANN001
    root = make_data(tmp_path / "data")
    (root / "DGM4/2.jpg").write_bytes(b"broken")
    model_dir = build(tmp_path / "model")
    context = GenContext(PromptSpec("caption", DEFAULT_CAPTION_PROMPT), 4, root)
    # random weights: keep them off the special tokens, so every caption decodes to words
    no_special = {"suppress_tokens": list(range(len(SPECIAL)))}
    backend = TransformersBackend(
        context,
        model=str(model_dir),
        batch_size=4,
        device="cpu",
        local_files_only=True,
        generate_kwargs=no_special,
    )
    stats = run_generation(caption_job(root, build.__name__), backend)
    assert backend.mode == ("chat" if build is tiny_llava else "none")
    if build is tiny_llava:
        assert backend.tokenizer.padding_side == "left"
    cache = AuxTextCache(root / f"{build.__name__}.jsonl")
    assert (stats.done, stats.failed) == (2, 1) and len(cache) == 3  # image 0 serves two keys
    assert "cannot read image" in next(iter(cache.failed.values()))
    for key in cache.keys():
        words = cache.get(*key).split()
        # the prompt is cut off: at most max_new_tokens words (one word per token in this vocabulary)
        assert 1 <= len(words) <= 4 and set(words) <= set(WORDS)
    assert cache.get("DGM4/0.jpg", "A woman waves.") == cache.get(
        "DGM4/0.jpg", "The man 0 waves to a crowd in the city."
    )
    assert stats.tokens >= 2


def tiny_chat_lm(folder: Path) -> Path:
    """A random-weight Llama with a chat template (the non-GGUF `from_pretrained` path)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    tok = tiny_tokenizer()
    tok.chat_template = CHAT
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )
    LlamaForCausalLM(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def test_batched_explanations_equal_one_by_one_with_left_padding(tmp_path: Path) -> None:
    from asap.auxtext.backends.base import GenRequest

    model_dir = tiny_chat_lm(tmp_path / "lm")
    spec = PromptSpec("explanation", DEFAULT_EXPLANATION_PROMPT)
    texts = ["a man", "the woman in the city waves to a crowd", "photo of a crowd in the city"]
    requests = [GenRequest(t, spec.render(t)) for t in texts]

    def run(batch_size: int) -> list[str | None]:
        backend = TransformersBackend(
            GenContext(spec, 5, tmp_path),
            model=str(model_dir),
            device="cpu",
            local_files_only=True,
            generate_kwargs={"suppress_tokens": [0, 1, 2, 3, 4]},
        )
        backend.load()
        assert backend.mode == "chat" and backend.tokenizer.padding_side == "left"
        out = []
        for i in range(0, len(requests), batch_size):
            out += [r.output for r in backend.generate(requests[i : i + batch_size])]
        return out

    batched, single = run(3), run(1)
    assert batched == single and all(o and len(o.split()) == 5 for o in batched)


@pytest.mark.slow
def test_smollm2_gguf_explains_texts_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gguf = pytest.importorskip("gguf", reason="the `gguf` package (dev extra `llm`) reads the GGUF file")
    from hydra import compose, initialize_config_dir

    import asap.utils.resolvers  # noqa: F401  (the ${...} resolvers of conf/)
    from asap.auxtext.cli import run_from_config

    root = make_data(tmp_path / "data", n=2, swap=False)  # two texts, one batch: the GGUF load dominates
    overrides = ["task=explanation", f"data_root={root}", "aux_backend=smollm2", "max_new_tokens=10"]
    parsed = []

    class CountingReader(gguf.GGUFReader):
        def __init__(self, path: str | os.PathLike, *args: object, **kwargs: object) -> None:
            parsed.append(Path(path).name)
            super().__init__(path, *args, **kwargs)

    monkeypatch.setattr(gguf, "GGUFReader", CountingReader)
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):  # the script's job, in-process
        run_from_config(compose("generate_aux_text", overrides=overrides))
    assert parsed == ["SmolLM2-135M-Instruct.Q4_1.gguf"] and gguf.GGUFReader is CountingReader  # read once
    cache = AuxTextCache(root / "DGM4/aux_text/explanation.jsonl")
    records = json.loads((root / "DGM4/metadata/train.json").read_text())
    assert len(cache) == len(records) == 2 and cache.models == {"SmolLM2-135M-Instruct-Q4_1"}
    outputs = [cache.get(r["image"], r["text"]) for r in records]
    assert all(o and o.strip() for o in outputs)
    assert not any(o.startswith("<|im_start|>") or "assistant\n" in o for o in outputs)  # only the new text
    entry = cache.entry(records[0]["image"], records[0]["text"])
    assert entry.settings["max_new_tokens"] == 10 and entry.settings["do_sample"] is False
    stats = json.loads((root / "DGM4/aux_text/explanation.stats.json").read_text())
    assert stats["done"] == 2 and 0 < stats["tokens"] <= 20 and stats["tokens_per_s"] > 0


def test_gguf_parsed_once_shares_readers_and_name_maps_within_the_block(tmp_path: Path) -> None:
    gguf = pytest.importorskip("gguf", reason="the `gguf` package (dev extra `llm`) reads GGUF files")
    path = str(tmp_path / "tiny.gguf")
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_uint32("tiny.answer", 42)
    writer.add_tensor("token_embd.weight", np.arange(8, dtype=np.float32).reshape(2, 4))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    reader, name_map = gguf.GGUFReader, gguf.get_tensor_name_map
    with gguf_parsed_once():
        first = gguf.GGUFReader(path)
        assert gguf.GGUFReader(path) is first and first.fields["tiny.answer"].parts[-1][0] == 42
        assert np.array_equal(first.tensors[0].data, np.arange(8).reshape(2, 4))
        assert gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, 2) is gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, 2)
    assert gguf.GGUFReader is reader and gguf.get_tensor_name_map is name_map  # restored
    assert gguf.GGUFReader(path) is not gguf.GGUFReader(path)


def test_vllm_absent_is_a_clean_error(tmp_path: Path) -> None:
    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vLLM is installed: covered by test_vllm_generates")
    from asap.auxtext.backends.vllm_backend import VLLMBackend

    context = GenContext(PromptSpec("explanation", DEFAULT_EXPLANATION_PROMPT), 8, tmp_path)
    with pytest.raises(BackendUnavailable, match="pip install vllm"):
        VLLMBackend(context, model="any")


def test_vllm_generates(tmp_path: Path) -> None:
    pytest.importorskip("vllm", reason="vLLM is not installed (optional, Linux + GPU): `pip install vllm`")
    if not torch.cuda.is_available():
        pytest.skip("vLLM needs a GPU")
    model = os.environ.get("ASAP_VLLM_TEST_MODEL")
    if not model:
        pytest.skip("set ASAP_VLLM_TEST_MODEL to a local text model folder to run vLLM")
    from asap.auxtext.backends.vllm_backend import VLLMBackend

    root = make_data(tmp_path / "data", n=2)
    context = GenContext(PromptSpec("explanation", DEFAULT_EXPLANATION_PROMPT), 8, root)
    job = GenerationJob(
        data_root=root,
        metadata=root / "DGM4/metadata/train.json",
        task="explanation",
        output=root / "explanation.jsonl",
    )
    stats = run_generation(job, VLLMBackend(context, model=model, gpu_memory_utilization=0.5))
    assert stats.done == 3 and stats.failed == 0
