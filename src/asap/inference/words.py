"""A user's text -> the model's input ids (the data layer's cleaning and tokenisation) and back to the user's words.

The model reads `clean_text(text)` tokenised by `encode_text`, exactly as in training. To report per word, each
word-piece is traced back: its `word_ids()` word -> that word's characters in the cleaned text -> the cleaned
(space-separated) word -> the user's (whitespace-separated) word it came from. A user word's probability is the
maximum over its pieces; a word with no piece (only punctuation, or cut by truncation) was not read.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from transformers import PreTrainedTokenizerBase

from asap.data.text import clean_text, encode_text
from asap.errors import UserError

NO_LIMIT = 10**9


@dataclass(frozen=True)
class PreparedText:
    """What the model reads for one text, and how its word-pieces map back to the user's words."""

    user_words: list[str]  # the user's text split on whitespace
    model_text: str  # the cleaned (and possibly truncated) text the model reads
    input_ids: list[int]  # [CLS] w1 .. wn (no final [SEP]), as `encode_text` gives in training
    piece_words: list[int | None]  # per position 1..L-1 of input_ids: index into user_words
    truncated: bool = False
    warnings: list[str] = field(default_factory=list)


def prepare_text(
    tokenizer: PreTrainedTokenizerBase, text: str, max_words: int, max_length: int, where: str = "text"
) -> PreparedText:
    """Clean + tokenise `text` as the data layer does; raise UserError (naming `where`) for an empty text.

    A text over `max_words` cleaned words or `max_length` tokens is truncated (as in training), with a warning.
    """
    user_words = text.split()
    if not user_words:
        raise UserError(f"{where}: the text is empty")
    joined = " ".join(user_words)
    full = clean_text(joined, max_words=NO_LIMIT)
    if not full:
        raise UserError(f"{where}: the text has no words left after cleaning (punctuation only?): {text!r}")
    owners = _cleaned_word_owners(user_words, full)
    if owners is None:  # cannot align (should not happen): report the cleaned words themselves
        user_words, owners = full.split(" "), list(range(len(full.split(" "))))
    model_text = clean_text(joined, max_words=max_words)
    input_ids, _ = encode_text(tokenizer, model_text, [], max_words, max_length)
    warnings = _truncation_warnings(tokenizer, full, model_text, max_words, max_length)
    return PreparedText(
        user_words=user_words,
        model_text=model_text,
        input_ids=input_ids,
        piece_words=_piece_words(tokenizer, model_text, max_length, owners, len(input_ids) - 1),
        truncated=bool(warnings),
        warnings=warnings,
    )


def _cleaned_word_owners(user_words: list[str], full: str) -> list[int] | None:
    """For each space-separated word of the cleaned text, the index of the user word it comes from."""
    owners: list[int] = []
    pieces: list[str] = []
    for i, word in enumerate(user_words):
        cleaned = clean_text(word, max_words=NO_LIMIT).split()
        owners += [i] * len(cleaned)
        pieces += cleaned
    return owners if " ".join(pieces) == full else None


def _piece_words(
    tokenizer: PreTrainedTokenizerBase, model_text: str, max_length: int, owners: list[int], n_pieces: int
) -> list[int | None]:
    """Per word-piece (positions 1..L-1): the user word, via `word_ids()` and the word's characters."""
    enc = tokenizer(model_text, max_length=max_length, truncation=True, add_special_tokens=True)
    word_ids = enc.word_ids()[1 : 1 + n_pieces]  # without [CLS]; the final [SEP] is not an input
    out: list[int | None] = []
    for word_id in word_ids:
        if word_id is None:
            out.append(None)
            continue
        start = enc.word_to_chars(word_id).start  # characters in model_text
        out.append(owners[model_text[:start].count(" ")])
    return out


def _truncation_warnings(
    tokenizer: PreTrainedTokenizerBase, full: str, model_text: str, max_words: int, max_length: int
) -> list[str]:
    warnings = []
    n_words = len(full.split(" "))
    if n_words > max_words:
        warnings.append(
            f"text truncated: {n_words} words after cleaning, the model reads the first {max_words}"
        )
    n_tokens = len(tokenizer(model_text, add_special_tokens=True)["input_ids"])
    if n_tokens > max_length:
        warnings.append(
            f"text truncated: {n_tokens - 2} word-pieces, the model reads the first {max_length - 2} "
            f"(model.max_text_len {max_length} counts [CLS] and [SEP])"
        )
    return warnings


def word_probabilities(prepared: PreparedText, piece_probs: list[float]) -> list[float | None]:
    """Per user word: the maximum probability over its word-pieces; None when the model did not read it."""
    if len(piece_probs) != len(prepared.piece_words):
        raise ValueError(f"{len(piece_probs)} piece probabilities for {len(prepared.piece_words)} pieces")
    best: list[float | None] = [None] * len(prepared.user_words)
    for word, prob in zip(prepared.piece_words, piece_probs, strict=True):
        if word is not None:
            current = best[word]
            best[word] = prob if current is None else max(current, prob)
    return best


def labelled_user_words(prepared: PreparedText, token_labels: list[int]) -> list[int]:
    """The user words that hold a word-piece labelled 1 (e.g. `encode_text` labels of a record's fake_text_pos)."""
    if len(token_labels) != len(prepared.piece_words):
        raise ValueError(f"{len(token_labels)} token labels for {len(prepared.piece_words)} pieces")
    words = {
        w for w, label in zip(prepared.piece_words, token_labels, strict=True) if label == 1 and w is not None
    }
    return sorted(words)
