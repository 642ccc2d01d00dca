"""Synthetic texts: news captions (and their text manipulations), oracle image captions, explanations.

A news caption is a sequence of `Word`s, one per whitespace word of the raw text (punctuation attached, no hyphens),
so its word positions are the `fake_text_pos` indices of DGM4. Text attribute flips emotion words; text swap takes
another scene's caption and marks the words that differ from the original (difflib alignment).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, replace

import numpy as np

from asap.data.synthetic.world import (
    ACTIONS_3S,
    ACTIONS_ING,
    ACTIONS_PL,
    CAST,
    EMOTION_WORDS,
    EXPRESSION_PHRASES,
    EXPRESSIONS,
    PLACES,
    RARE_EMOTION_WORDS,
    RARE_WORD_P,
    TAILS,
    Person,
)


@dataclass(frozen=True)
class Meaning:
    """What a caption claims: who (left to right), with which expression, where."""

    people: tuple[int, ...]
    emotions: tuple[str, ...]
    place: str


@dataclass(frozen=True)
class Word:
    core: str
    suffix: str = ""  # attached punctuation
    kind: str = "other"  # name | emotion | other
    slot: int = -1  # which person a name / emotion word refers to


@dataclass(frozen=True)
class Caption:
    words: tuple[Word, ...]
    meaning: Meaning

    @property
    def text(self) -> str:
        out, capital = [], True
        for w in self.words:
            core = w.core.capitalize() if (capital or w.kind == "name") else w.core
            out.append(core + w.suffix)
            capital = w.suffix.endswith(".")
        return " ".join(out)

    def plain(self) -> list[str]:
        return [w.core.lower() for w in self.words]


# a template piece: "N0" / "E1" (name / emotion of a slot), an upper-case slot of the scene, or literal words
TEMPLATES: dict[int, tuple[tuple[str, ...], ...]] = {
    1: (
        ("N0", "looks", "E0", "ACT_ING", "PREP", "PLACE", "TAIL", "."),
        ("the", "E0", "N0", "ACT_3S", "PREP", "PLACE", "TAIL", "."),
        ("N0", ",", "who", "looks", "E0", ",", "ACT_3S", "PREP", "PLACE", "TAIL", "."),
    ),
    2: (
        (
            "N0",
            "and",
            "N1",
            "ACT_PL",
            "PREP",
            "PLACE",
            ";",
            "N0",
            "looks",
            "E0",
            "while",
            "N1",
            "seems",
            "E1",
            "TAIL",
            ".",
        ),
        ("the", "E0", "N0", "meets", "the", "E1", "N1", "PREP", "PLACE", "TAIL", "."),
    ),
    3: (
        (
            "N0",
            ",",
            "N1",
            "and",
            "N2",
            "ACT_PL",
            "PREP",
            "PLACE",
            ".",
            "N0",
            "is",
            "E0",
            ",",
            "N1",
            "is",
            "E1",
            "and",
            "N2",
            "is",
            "E2",
            "TAIL",
            ".",
        ),
        (
            "the",
            "E0",
            "N0",
            ",",
            "the",
            "E1",
            "N1",
            "and",
            "the",
            "E2",
            "N2",
            "ACT_PL",
            "PREP",
            "PLACE",
            "TAIL",
            ".",
        ),
    ),
}


def _pick(rng: np.random.Generator, options: tuple[str, ...]) -> str:
    return options[int(rng.integers(len(options)))]


def emotion_word(rng: np.random.Generator, expression: str, flipped: bool = False) -> str:
    """An emotion word; the rare strong words are more likely in sentiment-flipped text."""
    rare = rng.random() < RARE_WORD_P["flipped" if flipped else "original"]
    return _pick(rng, (RARE_EMOTION_WORDS if rare else EMOTION_WORDS)[expression])


def news_caption(meaning: Meaning, rng: np.random.Generator) -> Caption:
    """A news-style caption that names the people, says their emotion and the place (plus a text-only action)."""
    templates = TEMPLATES[len(meaning.people)]
    template = templates[int(rng.integers(len(templates)))]
    prep, place_word, _ = PLACES[meaning.place]
    fills = {
        "ACT_ING": _pick(rng, ACTIONS_ING),
        "ACT_3S": _pick(rng, ACTIONS_3S),
        "ACT_PL": _pick(rng, ACTIONS_PL),
        "PREP": prep,
        "PLACE": place_word,
        "TAIL": _pick(rng, TAILS),
    }
    emotion_words = [emotion_word(rng, e) for e in meaning.emotions]
    words: list[Word] = []
    for piece in template:
        if piece in (".", ",", ";"):
            words[-1] = replace(words[-1], suffix=words[-1].suffix + piece)
        elif piece[0] in "NE" and piece[1:].isdigit():
            slot = int(piece[1:])
            if piece[0] == "N":
                words.append(Word(CAST[meaning.people[slot]].name, kind="name", slot=slot))
            else:
                words.append(Word(emotion_words[slot], kind="emotion", slot=slot))
        else:
            words += [Word(w) for w in fills.get(piece, piece).split()]
    return Caption(tuple(words), meaning)


def flip_emotions(
    caption: Caption, rng: np.random.Generator, avoid: dict[int, str] | None = None
) -> tuple[Caption, list[int]]:
    """Text attribute: give some people (at least one) another emotion; returns the caption and changed positions.

    `avoid[slot]` is an expression the new word must not match (the face's edited expression, for FA&TA).
    """
    slots = sorted({w.slot for w in caption.words if w.kind == "emotion"})
    chosen = [s for s in slots if rng.random() < 0.5] or [slots[int(rng.integers(len(slots)))]]
    emotions = list(caption.meaning.emotions)
    for s in chosen:
        banned = {emotions[s], (avoid or {}).get(s)}
        emotions[s] = _pick(rng, tuple(e for e in EXPRESSIONS if e not in banned))
    words, changed = list(caption.words), []
    for i, w in enumerate(words):
        if w.kind == "emotion" and w.slot in chosen:
            words[i] = replace(w, core=emotion_word(rng, emotions[w.slot], flipped=True))
            changed.append(i)
    return Caption(tuple(words), replace(caption.meaning, emotions=tuple(emotions))), changed


def swapped_positions(original: Caption, swapped: Caption) -> list[int]:
    """Text swap: positions of `swapped` words that the word alignment with `original` does not match."""
    matcher = difflib.SequenceMatcher(a=original.plain(), b=swapped.plain(), autojunk=False)
    return [j for tag, _, _, j1, j2 in matcher.get_opcodes() if tag != "equal" for j in range(j1, j2)]


def _looks(person: Person) -> str:
    if person.hair_style == "bald":
        return f"a bald head and {person.skin} skin"
    return f"{person.hair_style} {person.hair_colour} hair and {person.skin} skin"


POSITIONS = {
    1: ("",),
    2: ("on the left", "on the right"),
    3: ("on the left", "in the middle", "on the right"),
}
COUNTS = {1: "one person", 2: "two people", 3: "three people"}


def describe_image(people: list[int], expressions: list[str], place: str, rng: np.random.Generator) -> str:
    """What an ideal captioner says about the image: appearances (no names), real expressions, the place."""
    prep, place_word, details = PLACES[place]
    opener = _pick(rng, ("A photo of", "An image of", "A picture showing"))
    parts = [f"{opener} {COUNTS[len(people)]} {prep} {place_word} with {_pick(rng, details)}."]
    for pos, person, expression in zip(POSITIONS[len(people)], people, expressions, strict=True):
        where = f"{pos.capitalize()}, a" if pos else "A"
        parts.append(
            f"{where} person with {_looks(CAST[person])} {_pick(rng, EXPRESSION_PHRASES[expression])}."
        )
    return " ".join(parts)


def explain_text(caption: Caption, rng: np.random.Generator) -> str:
    """An LLM-style elaboration of the (possibly manipulated) text: what the named people and the place look like."""
    m = caption.meaning
    prep, place_word, details = PLACES[m.place]
    facts = [f"{CAST[p].name.capitalize()}, a {CAST[p].job}, has {_looks(CAST[p])}." for p in m.people]
    words = {w.slot: w.core for w in caption.words if w.kind == "emotion"}
    looks = " and ".join(
        f"{CAST[p].name.capitalize()} looking {words.get(i, m.emotions[i])}" for i, p in enumerate(m.people)
    )
    scene = (
        f"{_pick(rng, ('The image likely shows', 'The picture probably shows'))} {looks} {prep} {place_word}"
    )
    return " ".join(facts) + f" {scene}, with {_pick(rng, details)}."
