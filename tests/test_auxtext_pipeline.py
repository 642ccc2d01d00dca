"""Auxiliary-text generation: dedupe, cache keys, failures, model mismatch, resume after a kill, shards + merge,
statistics, the CLI, and the data layer reading what it wrote (echo / oracle backends: no model needed)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from asap.auxtext import (
    GenContext,
    GenerationJob,
    PromptSpec,
    build_work_items,
    merge_caches,
    merge_shards,
    run_generation,
    shard_of,
)
from asap.auxtext.backends.echo import EchoBackend
from asap.auxtext.cli import rewrite_subcommand
from asap.auxtext.prompts import DEFAULT_EXPLANATION_PROMPT
from asap.auxtext.work import find_shard_files, select_shard, shard_path
from asap.data.aux_cache import AuxTextCache
from asap.errors import AuxCacheMismatchError, MergeError, PromptError

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "src" / "generate_aux_text.py"
SWAP_TEXT = "Text number 3, with a swap."


def _record(i: int, image: str, text: str, fake_cls: str = "orig") -> dict:
    return {
        "id": i,
        "image": image,
        "text": text,
        "fake_cls": fake_cls,
        "fake_image_box": [],
        "fake_text_pos": [],
    }


def make_dgm4(root: Path, n: int = 6, bad_image: bool = True, splits: tuple[str, ...] = ("train",)) -> Path:
    """A tiny DGM4-format set: n originals, a text swap sharing image 0 with record 3's text, and (optionally) a
    record whose image is not an image."""
    (root / "DGM4" / "metadata").mkdir(parents=True, exist_ok=True)
    (root / "DGM4" / "origin").mkdir(parents=True, exist_ok=True)
    records = []
    for i in range(n):
        Image.new("RGB", (48 + i, 40), (30 * i % 255, 80, 120)).save(root / f"DGM4/origin/{i}.jpg")
        text = SWAP_TEXT if i == 3 else f"Person {i} waves in city {i}."
        records.append(_record(i, f"DGM4/origin/{i}.jpg", text))
    records.append(_record(100, "DGM4/origin/0.jpg", SWAP_TEXT, "text_swap"))  # shares image 0 and text 3
    if bad_image:
        (root / "DGM4/origin/broken.jpg").write_text("not a jpeg")
        records.append(_record(101, "DGM4/origin/broken.jpg", "A broken picture."))
    for split in splits:
        (root / f"DGM4/metadata/{split}.json").write_text(json.dumps(records))
    return root


def job(root: Path, task: str = "caption", **kw) -> GenerationJob:
    output = kw.pop("output", root / "DGM4" / "aux_text" / f"{task}.jsonl")
    return GenerationJob(
        data_root=root, metadata=root / "DGM4/metadata/train.json", task=task, output=output, **kw
    )


def echo(root: Path, task: str = "caption", **kw) -> EchoBackend:
    template = "Give the caption of this picture" if task == "caption" else DEFAULT_EXPLANATION_PROMPT
    return EchoBackend(GenContext(PromptSpec(task, template), 20, root), **kw)


def ok_lines(path: Path) -> Counter:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return Counter((r["image"], r["text"]) for r in rows if r["status"] == "ok")


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return make_dgm4(tmp_path / "data")


# ---------------------------------------------------------------- work items, keys


def test_work_items_dedupe_by_image_for_captions_and_by_text_for_explanations(data: Path) -> None:
    records = json.loads((data / "DGM4/metadata/train.json").read_text())
    captions = build_work_items(records, "caption")
    explanations = build_work_items(records, "explanation")
    assert len(captions) == 7  # 6 images + broken; the text swap reuses image 0
    assert len(explanations) == 7  # 7 distinct texts; the swap reuses record 3's text
    by_image = {it.uid: it.keys for it in captions}
    assert by_image["DGM4/origin/0.jpg"] == (
        ("DGM4/origin/0.jpg", "Person 0 waves in city 0."),
        ("DGM4/origin/0.jpg", SWAP_TEXT),
    )
    by_text = {it.uid: it.keys for it in explanations}
    assert set(by_text[SWAP_TEXT]) == {("DGM4/origin/3.jpg", SWAP_TEXT), ("DGM4/origin/0.jpg", SWAP_TEXT)}


def test_caption_and_explanation_keys_for_an_original_and_its_text_swap(data: Path) -> None:
    run_generation(job(data, "caption"), echo(data, "caption"))
    run_generation(job(data, "explanation"), echo(data, "explanation"))
    captions = AuxTextCache(data / "DGM4/aux_text/caption.jsonl")
    explanations = AuxTextCache(data / "DGM4/aux_text/explanation.jsonl")
    original, swapped = ("DGM4/origin/0.jpg", "Person 0 waves in city 0."), ("DGM4/origin/0.jpg", SWAP_TEXT)
    # same image -> one caption for both keys; different texts -> different explanations
    assert captions.get(*original) == captions.get(*swapped) == "caption of DGM4/origin/0.jpg"
    assert explanations.get(*original) != explanations.get(*swapped)
    assert explanations.get(*swapped) == explanations.get("DGM4/origin/3.jpg", SWAP_TEXT)
    # the image path alone is not a key
    assert captions.get("DGM4/origin/0.jpg", "some other text") is None


def test_prompts_default_to_the_paper_and_explanations_need_the_text_slot() -> None:
    spec = PromptSpec("explanation", DEFAULT_EXPLANATION_PROMPT)
    assert spec.render('He said {"x"}') == (
        "Refer to the following text to describe the specific information of the corresponding image: "
        '"He said {"x"}"'
    )
    assert (
        PromptSpec("caption", "Give the caption of this picture").render()
        == "Give the caption of this picture"
    )
    with pytest.raises(PromptError, match="text"):
        PromptSpec("explanation", "Describe the image")
    assert spec.hash != PromptSpec("explanation", DEFAULT_EXPLANATION_PROMPT, system="be brief").hash


# ---------------------------------------------------------------- failures


def test_failures_are_recorded_with_reasons_never_as_empty_outputs_and_retried(data: Path) -> None:
    # item 2's batch raises (so the batch is retried one by one and only item 2 fails); item 4 answers empty
    backend = echo(data, "caption", batch_size=4, fail_on=["origin/2.jpg"], empty_on=["origin/4.jpg"])
    stats = run_generation(job(data), backend)
    cache = AuxTextCache(data / "DGM4/aux_text/caption.jsonl")
    assert (stats.done, stats.failed, stats.skipped) == (4, 3, 0)
    reasons = {k[0]: v for k, v in cache.failed.items()}
    assert "ImageReadError" in reasons["DGM4/origin/broken.jpg"]
    assert "injected failure" in reasons["DGM4/origin/2.jpg"]
    assert reasons["DGM4/origin/4.jpg"] == "empty output"
    assert all(cache.get(*k) is None for k in cache.failed)
    saved = json.loads((data / "DGM4/aux_text/caption.stats.json").read_text())
    assert saved["failed"] == 3 and {f["uid"] for f in saved["failures"]} == {
        "DGM4/origin/broken.jpg",
        "DGM4/origin/2.jpg",
        "DGM4/origin/4.jpg",
    }

    # the next run retries exactly the failed items; the ones that now work are filled in
    again = run_generation(job(data), echo(data, "caption"))
    assert (again.skipped, again.retried, again.done, again.failed) == (4, 3, 2, 1)
    cache = AuxTextCache(data / "DGM4/aux_text/caption.jsonl")
    assert cache.get("DGM4/origin/4.jpg", "Person 4 waves in city 4.") == "caption of DGM4/origin/4.jpg"
    assert list(cache.failed) == [("DGM4/origin/broken.jpg", "A broken picture.")]


# ---------------------------------------------------------------- model mismatch


def test_another_model_is_refused_naming_both_unless_overwrite(data: Path) -> None:
    run_generation(job(data), echo(data))

    class Other(EchoBackend):
        @property
        def model_name(self) -> str:
            return "other-captioner"

        def _one(self, request):  # noqa: ANN001, ANN202
            result = super()._one(request)
            result.output = result.output and "other " + result.output
            return result

    with pytest.raises(AuxCacheMismatchError, match=r"\['echo'\].*'other-captioner'"):
        run_generation(job(data), Other(echo(data).context))
    # another prompt is refused too
    other_prompt = EchoBackend(GenContext(PromptSpec("caption", "Describe this photo."), 20, data))
    with pytest.raises(AuxCacheMismatchError, match="prompt hash"):
        run_generation(job(data), other_prompt)
    # a different output file is fine; overwrite regenerates every entry with the new model
    run_generation(job(data, output=data / "other.jsonl"), Other(echo(data).context))
    stats = run_generation(job(data, overwrite_model_mismatch=True), Other(echo(data).context))
    assert stats.skipped == 0 and stats.done == 6
    assert AuxTextCache(data / "DGM4/aux_text/caption.jsonl").models == {"other-captioner"}


# ---------------------------------------------------------------- resume after a kill


ENV = os.environ | {"COLUMNS": "250"}  # rich wraps at 80 columns when not on a terminal


def _cli(*args: str, cwd: Path) -> list[str]:
    return [sys.executable, str(SCRIPT), *args, f"hydra.run.dir={cwd / 'hydra'}"]


def test_a_killed_run_resumes_without_losing_or_duplicating_entries(tmp_path: Path) -> None:
    root = make_dgm4(tmp_path / "data", n=30, bad_image=False)
    out = root / "DGM4/aux_text/explanation.jsonl"
    args = (
        "task=explanation",
        f"data_root={root}",
        "aux_backend=echo",
        "aux_backend.batch_size=1",
        "aux_backend.delay_s=0.1",
    )
    proc = subprocess.Popen(
        _cli(*args, cwd=tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=ENV
    )
    deadline = time.time() + 60
    while time.time() < deadline and (not out.exists() or len(out.read_text().splitlines()) < 6):
        assert proc.poll() is None, proc.stderr.read().decode()
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = ok_lines(out)
    assert 6 <= sum(before.values()) < 31
    with out.open("a") as f:  # a line torn by the kill
        f.write('{"image": "DGM4/origin/9.jpg", "te')

    resumed = subprocess.run(
        _cli(*args, "aux_backend.delay_s=0", cwd=tmp_path), capture_output=True, text=True, env=ENV
    )
    assert resumed.returncode == 0, resumed.stderr
    after = ok_lines(out)
    assert set(after.values()) == {1}  # no key written twice
    assert len(after) == 31 and set(before) <= set(after)
    stats = json.loads((root / "DGM4/aux_text/explanation.stats.json").read_text())
    assert stats["skipped"] + stats["reused"] == len({k[1] for k in before})
    assert stats["skipped"] + stats["reused"] + stats["done"] == stats["items"] == 30
    cache = AuxTextCache(out)
    assert cache.get("DGM4/origin/0.jpg", SWAP_TEXT) == f"explanation of {SWAP_TEXT}"


def test_an_item_killed_between_its_keys_gets_its_cached_output_copied(data: Path) -> None:
    run_generation(job(data), echo(data))
    out = data / "DGM4/aux_text/caption.jsonl"
    lines = out.read_text().splitlines()
    shared = [
        i
        for i, line in enumerate(lines)
        if json.loads(line)["text"] == SWAP_TEXT and json.loads(line)["image"] == "DGM4/origin/0.jpg"
    ]
    out.write_text("\n".join(lines[: shared[0]]) + "\n")  # the swap's key of image 0 was never written
    stats = run_generation(job(data), echo(data, fail_on=["origin/0.jpg"]))  # regenerating would fail
    assert stats.reused == 1 and stats.keys_written >= 1
    assert AuxTextCache(out).get("DGM4/origin/0.jpg", SWAP_TEXT) == "caption of DGM4/origin/0.jpg"


# ---------------------------------------------------------------- shards and merge


def test_shards_are_a_deterministic_partition() -> None:
    uids = [f"DGM4/origin/{i}.jpg" for i in range(200)]
    items = build_work_items([_record(i, u, "t") for i, u in enumerate(uids)], "caption")
    parts = [select_shard(items, s, 4) for s in range(4)]
    assert sorted(it.uid for p in parts for it in p) == sorted(uids)
    assert all(20 < len(p) < 80 for p in parts)
    assert shard_of("DGM4/origin/7.jpg", 4) == shard_of("DGM4/origin/7.jpg", 4)
    assert shard_path("/x/caption.jsonl", 2, 4) == Path("/x/caption.shard2-of-4.jsonl")


def test_shards_merged_equal_a_single_run(data: Path, tmp_path: Path) -> None:
    single = job(data, output=tmp_path / "single" / "caption.jsonl")
    run_generation(single, echo(data))
    for shard in range(3):
        run_generation(job(data, shard=shard, num_shards=3), echo(data))
    output = data / "DGM4/aux_text/caption.jsonl"
    assert sorted(find_shard_files(output)) == [0, 1, 2] and not output.exists()
    report = merge_shards(output, num_shards=3)
    assert (report.entries, report.failed, report.conflicts) == (7, 1, 0)

    merged, reference = AuxTextCache(output), AuxTextCache(single.output)
    assert {k: merged.entry(*k) for k in merged.keys()} == {k: reference.entry(*k) for k in reference.keys()}
    assert merged.failed.keys() == reference.failed.keys()
    canonical = merge_caches([single.output], tmp_path / "canonical.jsonl")
    assert canonical.entries == 7
    assert (tmp_path / "canonical.jsonl").read_bytes() == output.read_bytes()
    # merging again (the output is an input now) changes nothing
    merge_shards(output, num_shards=3, remove_inputs=True)
    assert (tmp_path / "canonical.jsonl").read_bytes() == output.read_bytes()
    assert find_shard_files(output) == {}


def test_merge_refuses_missing_shards_and_mixed_models(data: Path) -> None:
    run_generation(job(data, shard=0, num_shards=2), echo(data))
    output = data / "DGM4/aux_text/caption.jsonl"
    with pytest.raises(MergeError, match=r"shards \[1\] of 2 are missing"):
        merge_shards(output, num_shards=2)
    other = data / "other.jsonl"
    run_generation(job(data, output=other), echo(data, "caption"))
    lines = [json.loads(x) | {"model": "another"} for x in other.read_text().splitlines()]
    other.write_text("".join(json.dumps(x) + "\n" for x in lines))
    with pytest.raises(AuxCacheMismatchError, match="another"):
        merge_caches([shard_path(output, 0, 2), other], data / "merged.jsonl")


def test_a_shard_skips_what_the_merged_output_already_has(data: Path) -> None:
    run_generation(job(data), echo(data))
    stats = run_generation(job(data, shard=1, num_shards=2), echo(data))
    assert stats.done == 0 and stats.skipped == stats.items - stats.failed


# ---------------------------------------------------------------- CLI, config, stats


def test_cli_generate_status_and_merge_subcommands(data: Path, tmp_path: Path) -> None:
    for shard in (0, 1):
        res = subprocess.run(
            _cli(f"data_root={data}", "aux_backend=echo", f"shard={shard}", "num_shards=2", cwd=tmp_path),
            capture_output=True,
            text=True,
            env=ENV,
        )
        assert res.returncode == 0, res.stderr
        assert "done (generated)" in res.stdout and "failed" in res.stdout
    res = subprocess.run(
        _cli("merge", f"data_root={data}", "num_shards=2", cwd=tmp_path),
        capture_output=True,
        text=True,
        env=ENV,
    )
    assert res.returncode == 0, res.stderr
    assert len(AuxTextCache(data / "DGM4/aux_text/caption.jsonl")) == 7
    res = subprocess.run(
        _cli("status", f"data_root={data}", cwd=tmp_path), capture_output=True, text=True, env=ENV
    )
    assert res.returncode == 0, res.stderr
    assert "missing" in res.stdout and "['echo']" in res.stdout
    # a user error is one line, exit status 2
    res = subprocess.run(
        _cli(f"data_root={data}", "aux_backend=oracle", cwd=tmp_path), capture_output=True, text=True, env=ENV
    )
    assert res.returncode == 2 and "synthetic set only" in res.stdout + res.stderr


def test_config_composes_with_every_backend_and_the_paper_prompts(tmp_path: Path) -> None:
    from hydra import compose, initialize_config_dir

    import asap.utils.resolvers  # noqa: F401

    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        for backend in ("transformers", "openai", "vllm", "oracle", "echo", "smollm2"):
            cfg = compose(
                "generate_aux_text", overrides=[f"aux_backend={backend}", "data_root=/d", "task=explanation"]
            )
            assert cfg.aux_backend._target_.startswith("asap.auxtext.backends.")
        assert cfg.output == "/d/DGM4/aux_text/explanation.jsonl"
        assert cfg.prompts.caption == "Give the caption of this picture"
        assert cfg.prompts.explanation == DEFAULT_EXPLANATION_PROMPT
        assert Path(cfg.aux_backend.model, cfg.aux_backend.gguf_file).is_file()  # the bundled SmolLM2
        cfg = compose("generate_aux_text", overrides=["data_root=/d"])
        assert cfg.aux_backend.model == cfg.models.caption


def test_rewrite_subcommand() -> None:
    assert rewrite_subcommand(["g.py", "merge", "num_shards=2"]) == ["g.py", "command=merge", "num_shards=2"]
    assert rewrite_subcommand(["g.py", "task=caption"]) == ["g.py", "task=caption"]


# ---------------------------------------------------------------- the data layer reads it


def test_datamodule_reads_the_generated_texts(tmp_path: Path) -> None:
    from asap.data import DGM4DataModule
    from asap.data.text import clean_text
    from asap.utils.paths import bundled_bert_tokenizer_dir

    root = make_dgm4(tmp_path / "data", n=4, bad_image=False, splits=("train", "val"))
    for task in ("caption", "explanation"):
        run_generation(job(root, task), echo(root, task))
    dm = DGM4DataModule(
        root,
        tokenizer=str(bundled_bert_tokenizer_dir()),
        image_size=64,
        patch_size=16,
        batch_size=2,
        num_workers=0,
        persistent_workers=False,
        pin_memory=False,
        load_caption=True,
        load_explanation=True,
        missing_aux="error",
    )
    dm.setup("fit")
    train = dm.datasets["train"]
    records = json.loads((root / "DGM4/metadata/train.json").read_text())
    assert train.captions == [clean_text(f"caption of {r['image']}") for r in records]
    assert train.explanations == [clean_text(f"explanation of {r['text']}") for r in records]
    assert "caption_ids" in train[0] and "explanation_ids" in train[0]


def test_oracle_backend_serves_the_synthetic_ground_truth(tmp_path: Path) -> None:
    synthetic = pytest.importorskip("asap.data.synthetic", reason="the synthetic generator is not there yet")
    from asap.auxtext.backends.oracle import OracleBackend

    root = synthetic.generate_synthetic_dgm4(tmp_path / "syn", num_train=12, num_val=2, num_test=2)
    source = AuxTextCache(root / "DGM4/aux_text/explanation.jsonl")
    context = GenContext(PromptSpec("explanation", DEFAULT_EXPLANATION_PROMPT), 120, Path(root))
    backend = OracleBackend(context)
    assert backend.model_name == "oracle"
    # the generator's own file is complete for train: nothing to do
    assert run_generation(job(Path(root), "explanation"), backend).done == 0
    copy = job(Path(root), "explanation", output=tmp_path / "copy.jsonl")
    stats = run_generation(copy, OracleBackend(context))
    assert stats.failed == 0 and stats.done == stats.items
    copied = AuxTextCache(copy.output)
    assert all(copied.get(*k) == source.get(*k) for k in copied.keys()) and len(copied) == stats.keys


def test_a_second_writer_of_the_same_file_is_refused(data: Path) -> None:
    from asap.auxtext.locks import exclusive
    from asap.errors import CacheBusyError

    target = data / "DGM4/aux_text/caption.jsonl"
    with exclusive(target), pytest.raises(CacheBusyError, match="another process"):
        run_generation(job(data), echo(data))
    with exclusive(target), pytest.raises(CacheBusyError):
        merge_shards(target, inputs=[target])
    assert run_generation(job(data), echo(data)).done == 6  # free again
