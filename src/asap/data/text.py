"""Text side of the DGM4 protocol: caption cleaning and word-piece manipulation labels.

Cleaning is HAMMER's `pre_caption`; labels follow HAMMER's `text_input_adjust`: the fast tokenizer's `word_ids()`
on the cleaned text map word-pieces to `fake_text_pos`, so characters BERT splits off (`$ % & @ +`) shift the word
indices exactly as in the protocol.
"""

from __future__ import annotations

import re

from transformers import PreTrainedTokenizerBase

from asap.errors import DGM4DataError

_DELETED = re.compile(r"[,.'!?\"()*#:;~]")
_MULTI_SPACE = re.compile(r"\s{2,}")


def clean_text(text: str, max_words: int = 50) -> str:
    """Lower-case, delete `,.'!?"()*#:;~`, `-` and `/` -> space, `<person>` -> `person`, collapse spaces, keep
    the first `max_words` space-separated words (HAMMER's `pre_caption`, same quirks)."""
    text = _DELETED.sub("", text.lower()).replace("-", " ").replace("/", " ").replace("<person>", "person")
    text = _MULTI_SPACE.sub(" ", text).rstrip("\n").strip(" ")
    words = text.split(" ")
    return " ".join(words[:max_words]) if len(words) > max_words else text


def encode_text(
    tokenizer: PreTrainedTokenizerBase,
    text: str,
    fake_text_pos: list[int],
    max_words: int = 50,
    max_length: int = 128,
) -> tuple[list[int], list[int]]:
    """Cleaned text -> (`[CLS] w1 .. wn` ids without the final [SEP], labels of w1 .. wn).

    A word-piece is labelled 1 when its `word_ids()` index is in `fake_text_pos` (indices >= `max_words` dropped
    first, as the protocol does), else 0. len(labels) == len(ids) - 1.
    """
    enc = tokenizer(text, max_length=max_length, truncation=True, add_special_tokens=True)
    word_ids = enc.word_ids()[1:-1]  # without [CLS] and [SEP]
    fake = {i for i in fake_text_pos if i < max_words}
    labels = [int(w is not None and w in fake) for w in word_ids]
    return list(enc["input_ids"][:-1]), labels


def encode_aux(
    tokenizer: PreTrainedTokenizerBase, text: str, max_length: int = 128, final_sep: bool = True
) -> list[int]:
    """Auxiliary text (caption / explanation) -> `[CLS] .. [SEP]` ids; without the final [SEP] when not
    `final_sep` (official mode: ASAP's text_input_adjust drops it from every text)."""
    ids = list(tokenizer(text, max_length=max_length, truncation=True, add_special_tokens=True)["input_ids"])
    return ids if final_sep else ids[:-1]


def load_tokenizer(name_or_path: str) -> PreTrainedTokenizerBase:
    """A fast (Rust) tokenizer from a folder or hub name; the labels need its `word_ids()`."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(name_or_path))
    except OSError as err:  # not a local folder and the hub unreachable, or a broken folder
        raise DGM4DataError(
            f"cannot load the tokenizer {str(name_or_path)!r}: {err}\n"
            "Give a local folder (model.tokenizer=/path/to/bert-base-uncased) or the bundled bert-base-uncased "
            "vocabulary (model.tokenizer='${bundled_bert_tokenizer:}'); HF_HUB_OFFLINE=1 skips the network retries."
        ) from err
    if not tokenizer.is_fast:
        raise ValueError(f"tokenizer {name_or_path!r} is not a fast tokenizer; token labels need word_ids()")
    return tokenizer
