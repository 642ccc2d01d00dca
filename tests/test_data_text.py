"""Text cleaning and word-piece manipulation labels against hand-derived expectations (bert-base-uncased)."""

from __future__ import annotations

import pytest

from asap.data.text import clean_text, encode_aux, encode_text


@pytest.mark.parametrize(
    ("raw", "cleaned"),
    [
        ("Boris (left) smiles, happily!", "boris left smiles happily"),
        ('<PERSON> waves "hello"  to  fans...', "person waves hello to fans"),
        ("A well-known chef/owner", "a well known chef owner"),
        ("It's 5:30 p.m.; #news ~ *live*", "its 530 pm news live"),
        ("  Prices rose $5 to 20% & more  ", "prices rose $5 to 20% & more"),
    ],
)
def test_clean_text_matches_pre_caption(raw: str, cleaned: str) -> None:
    assert clean_text(raw) == cleaned


def test_clean_text_keeps_first_max_words() -> None:
    words = [f"w{i}" for i in range(60)]
    assert clean_text(" ".join(words)).split(" ") == words[:50]
    assert clean_text(" ".join(words), max_words=3) == "w0 w1 w2"


def _tokens_and_labels(tokenizer, raw: str, pos: list[int]) -> tuple[list[str], list[int]]:
    ids, labels = encode_text(tokenizer, clean_text(raw), pos)
    assert ids[0] == tokenizer.cls_token_id and tokenizer.sep_token_id not in ids  # [CLS] kept, [SEP] removed
    assert len(labels) == len(ids) - 1
    return tokenizer.convert_ids_to_tokens(ids[1:]), labels


def test_labels_with_punctuation(tokenizer) -> None:
    tokens, labels = _tokens_and_labels(tokenizer, "Boris (left) smiles, happily!", [2, 3])
    assert tokens == ["boris", "left", "smiles", "happily"]
    assert labels == [0, 0, 1, 1]


def test_dollar_and_percent_shift_word_ids_like_the_protocol(tokenizer) -> None:
    # whitespace words: prices(0) rose(1) $5(2) to(3) 20%(4) today(5); word_ids count "$" and "%" as words
    tokens, labels = _tokens_and_labels(tokenizer, "Prices rose $5 to 20% today", [4])
    assert tokens == ["prices", "rose", "$", "5", "to", "20", "%", "today"]
    assert labels == [0, 0, 0, 0, 1, 0, 0, 0]  # word 4 lands on "to", not on "20%"
    _, labels = _tokens_and_labels(tokenizer, "Prices rose $5 to 20% today", [5])
    assert labels == [0, 0, 0, 0, 0, 1, 0, 0]  # "today" (whitespace word 5) is not labelled


def test_other_split_off_characters(tokenizer) -> None:
    tokens, labels = _tokens_and_labels(tokenizer, "R&D chief + more", [1, 3])
    assert tokens == ["r", "&", "d", "chief", "+", "more"]
    assert labels == [0, 1, 0, 1, 0, 0]


def test_hyphen_becomes_two_words(tokenizer) -> None:
    tokens, labels = _tokens_and_labels(tokenizer, "A well-known chef", [2])
    assert tokens == ["a", "well", "known", "chef"]
    assert labels == [0, 0, 1, 0]


def test_every_sub_word_piece_is_labelled(tokenizer) -> None:
    tokens, labels = _tokens_and_labels(tokenizer, "An unbelievably joyful crowd", [1, 2])
    assert tokens == ["an", "un", "##bel", "##ie", "##va", "##bly", "joy", "##ful", "crowd"]
    assert labels == [0, 1, 1, 1, 1, 1, 1, 1, 0]


def test_more_than_50_words_drops_late_positions(tokenizer) -> None:
    raw = " ".join(["news"] * 55)
    tokens, labels = _tokens_and_labels(tokenizer, raw, [3, 49, 50, 54])
    assert len(tokens) == 50
    assert [i for i, v in enumerate(labels) if v] == [3, 49]


def test_position_50_is_dropped_even_when_word_ids_reach_it(tokenizer) -> None:
    # "$5" adds a word id, so the 50 kept words give word ids 0..50; the protocol still drops index 50
    raw = "$5 " + " ".join(["news"] * 54)
    tokens, labels = _tokens_and_labels(tokenizer, raw, [0, 50])
    assert tokens[:3] == ["$", "5", "news"] and len(tokens) == 51
    assert labels == [1] + [0] * 50


def test_long_text_is_cut_at_max_length(tokenizer) -> None:
    ids, labels = encode_text(tokenizer, clean_text(" ".join(["unbelievably"] * 40)), [39], max_length=128)
    assert len(ids) == 127 and len(labels) == 126  # 128 with [SEP], which is removed
    assert sum(labels) == 0  # word 39 is past the cut


def test_encode_aux_keeps_both_special_tokens(tokenizer) -> None:
    ids = encode_aux(tokenizer, "a person with red hair", max_length=5)
    assert ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id and len(ids) == 5


def test_an_unloadable_tokenizer_names_itself_and_the_offline_choices(tmp_path, monkeypatch) -> None:
    from asap.data.text import load_tokenizer
    from asap.errors import DGM4DataError

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DGM4DataError, match=r"(?s)cannot load the tokenizer .*bundled_bert_tokenizer"):
        load_tokenizer(tmp_path / "no-such-tokenizer")
