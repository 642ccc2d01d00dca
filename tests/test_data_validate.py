"""Bad input gets a clear error naming the file and record (or is skipped and logged when configured)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from asap.data import DGM4DataModule
from asap.data.aux_cache import AuxTextWriter
from asap.data.validate import records_without_aux, validate_split_file
from asap.errors import DGM4DataError
from helpers import load_script

ROOT = Path(__file__).resolve().parents[1]
validate_main = load_script("validate.py").main  # src/validate.py, driven in-process through its main(argv)

# (record changes, problem kind): each makes record #1 bad; images are 120x80
BAD_CASES = {
    "missing_image": ({"image": "DGM4/origin/bbc/0000/nowhere.jpg"}, "missing_image"),
    "missing_field": ({"fake_cls": None}, "missing_field"),
    "unknown_fake_cls": ({"fake_cls": "face_morph"}, "unknown_fake_cls"),
    "short_box": ({"fake_cls": "face_swap", "fake_image_box": [1, 2, 3]}, "malformed_box"),
    "inverted_box": ({"fake_cls": "face_swap", "fake_image_box": [50, 10, 20, 40]}, "malformed_box"),
    "string_box": ({"fake_cls": "face_swap", "fake_image_box": ["1", 2, 30, 40]}, "malformed_box"),
    "box_outside": ({"fake_cls": "face_swap", "fake_image_box": [100, 10, 130, 40]}, "box_outside_image"),
    "negative_box": ({"fake_cls": "face_swap", "fake_image_box": [-5, 10, 30, 40]}, "box_outside_image"),
    "swap_without_box": ({"fake_cls": "face_swap"}, "box_class_mismatch"),
    "box_on_orig": ({"fake_image_box": [10, 10, 30, 40]}, "box_class_mismatch"),
    "pos_beyond_text": ({"fake_cls": "text_swap", "fake_text_pos": [2, 5]}, "text_pos_beyond_text"),
    "pos_not_ints": ({"fake_cls": "text_swap", "fake_text_pos": [1.5]}, "malformed_text_pos"),
    "pos_on_orig": ({"fake_text_pos": [0]}, "text_pos_class_mismatch"),
    "empty_text": ({"text": " ...!? "}, "empty_text"),
    "text_not_str": ({"text": None}, "bad_field_type"),
}


def _bad_split(dgm4_record, case: str) -> list[dict]:
    changes, _ = BAD_CASES[case]
    bad = dgm4_record(1, text="Anna smiles today.") | changes
    bad = {k: v for k, v in bad.items() if v is not None or k == "text"}
    return [dgm4_record(0), bad, dgm4_record(2)]


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_each_bad_record_stops_setup_with_its_id(case: str, make_dgm4, dgm4_record, tokenizer_dir) -> None:
    root = make_dgm4({"val": _bad_split(dgm4_record, case)}, skip_images={"DGM4/origin/bbc/0000/nowhere.jpg"})
    dm = DGM4DataModule(root=root, tokenizer=tokenizer_dir, image_size=64, patch_size=8, num_workers=0)
    with pytest.raises(DGM4DataError) as err:
        dm.setup("validate")
    msg = str(err.value)
    kind = BAD_CASES[case][1]
    assert "val.json" in msg and "1 of 3 records" in msg and f"#1 (id=1) {kind}" in msg


def test_not_a_record_and_many_problems_are_all_listed(make_dgm4, dgm4_record) -> None:
    records = ["just a string", dgm4_record(1, "face_morph", text=""), dgm4_record(2)]
    root = make_dgm4({"train": records})
    report = validate_split_file(root / "DGM4/metadata/train.json", root)
    assert report.bad_indices == [0, 1]
    assert sorted(report.counts().items()) == [
        ("empty_text", 1),
        ("not_a_record", 1),
        ("unknown_fake_cls", 1),
    ]


def test_skip_mode_drops_exactly_the_bad_records_and_logs_them(
    make_dgm4, dgm4_record, tokenizer_dir, caplog
) -> None:
    records = _bad_split(dgm4_record, "unknown_fake_cls") + [dgm4_record(3, "text_swap", fake_text_pos=[9])]
    root = make_dgm4({"val": records})
    dm = DGM4DataModule(
        root=root, tokenizer=tokenizer_dir, image_size=64, patch_size=8, num_workers=0, on_bad_records="skip"
    )
    with caplog.at_level(logging.WARNING):
        dm.setup("validate")
    assert [i for i, _ in dm.datasets["val"].entries] == [0, 2]
    assert "dropping 2 bad records" in caplog.text
    assert "#1 (id=1) unknown_fake_cls" in caplog.text and "#3 (id=3) text_pos_beyond_text" in caplog.text
    batch = next(iter(dm.val_dataloader()))
    assert batch["index"].tolist() == [0, 2]  # positions in the split file


def test_missing_or_malformed_split_file(make_dgm4, dgm4_record, tokenizer_dir) -> None:
    root = make_dgm4({"val": [dgm4_record(0)]})
    dm = DGM4DataModule(root=root, tokenizer=tokenizer_dir, image_size=64, patch_size=8, num_workers=0)
    with pytest.raises(DGM4DataError, match=r"split file not found: .*test\.json"):
        dm.setup("test")
    (root / "DGM4/metadata/test.json").write_text('{"id": 1}')
    with pytest.raises(DGM4DataError, match="must hold a JSON list"):
        dm.setup("test")
    (root / "DGM4/metadata/test.json").write_text("[{")
    with pytest.raises(DGM4DataError, match="not valid JSON"):
        dm.setup("test")


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_header_check_is_cheap_and_deep_check_decodes(make_dgm4, dgm4_record, tokenizer_dir) -> None:
    root = make_dgm4(
        {"val": [dgm4_record(0), dgm4_record(1)]}, sizes={"DGM4/origin/bbc/0000/1.jpg": (300, 200)}
    )
    broken = root / "DGM4/origin/bbc/0000/0.jpg"
    _truncate(broken)
    (root / "DGM4/origin/bbc/0000/1.jpg").write_text("not an image")
    split = root / "DGM4/metadata/val.json"
    header = validate_split_file(split, root, image_check="header")
    assert [(p.index, p.kind) for p in header.problems] == [(1, "unreadable_image")]  # truncation not seen
    deep = validate_split_file(split, root, image_check="deep")
    assert [(p.index, p.kind) for p in deep.problems] == [(0, "unreadable_image"), (1, "unreadable_image")]
    # a truncated image that passed the cheap check still fails loudly when loaded
    dm = DGM4DataModule(
        root=root, tokenizer=tokenizer_dir, image_size=64, patch_size=8, num_workers=0, on_bad_records="skip"
    )
    dm.setup("validate")
    with pytest.raises(DGM4DataError, match=r"val\.json: record #0 \(id=0\): cannot read image .*0\.jpg"):
        dm.datasets["val"][0]


def test_validate_command(make_dgm4, dgm4_record, capsys) -> None:
    root = make_dgm4(
        {"train": _bad_split(dgm4_record, "box_outside"), "val": [dgm4_record(5)], "test": [dgm4_record(6)]}
    )
    assert validate_main([str(root), "--split", "val", "test"]) == 0
    assert "all clean" in capsys.readouterr().out
    assert validate_main([str(root), "--aux", "caption"]) == 1
    out = capsys.readouterr().out
    assert "box_outside_image" in out and "1 bad records" in out and "caption cache not found" in out
    assert validate_main([str(root), "--split", "nope"]) == 1
    assert "split file not found" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        validate_main(["--help"])
    assert "--deep" in capsys.readouterr().out


def test_records_without_aux_are_named_by_position(tmp_path: Path, dgm4_record) -> None:
    records = [dgm4_record(0), dgm4_record(1), "not a record", dgm4_record(3)]
    cache = tmp_path / "caption.jsonl"
    with AuxTextWriter(cache, model="m", prompt_hash="h", settings={}) as writer:
        for r in (records[0], records[3]):
            writer.write_ok(r["image"], r["text"], "a caption")
        writer.write_failed(records[1]["image"], records[1]["text"], "timeout")  # failed: still missing
    assert records_without_aux(records, cache) == [1]


def test_validate_command_names_a_broken_cache_and_exits_2(make_dgm4, dgm4_record, capsys) -> None:
    root = make_dgm4({"val": [dgm4_record(0)]})
    cache = root / "DGM4/aux_text/caption.jsonl"
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text("not json\n")
    with pytest.raises(SystemExit) as exit_info:
        validate_main([str(root), "--split", "val", "--aux", "caption"])
    out = " ".join(capsys.readouterr().out.split())
    assert exit_info.value.code == 2 and "AuxCacheError" in out and "caption.jsonl:1" in out
