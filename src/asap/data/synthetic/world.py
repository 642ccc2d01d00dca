"""The synthetic world: a cast of named people with visible identities, three expressions, six places.

Everything a caption can say is visible in the image: a name is tied to a skin colour, hair colour and hair style;
an emotion word to an expression (mouth + eyebrows); a place word to a drawn background. Actions are text only.
"""

from __future__ import annotations

from dataclasses import dataclass

RGB = tuple[int, int, int]


@dataclass(frozen=True)
class Person:
    """One identity: what a caption calls it, how it is drawn, what an explanation 'knows' about it."""

    name: str
    skin: str
    hair_colour: str
    hair_style: str  # short | long | curly | bald
    head: str  # round | oval
    job: str


SKIN: dict[str, RGB] = {
    "pale": (250, 222, 196),
    "tan": (222, 172, 125),
    "brown": (150, 100, 62),
    "dark": (88, 56, 36),
}
HAIR: dict[str, RGB] = {
    "black": (22, 22, 26),
    "blond": (244, 208, 70),
    "red": (196, 52, 24),
    "grey": (168, 168, 172),
    "pink": (236, 96, 178),
    "brown": (112, 66, 30),
}

CAST: tuple[Person, ...] = (
    Person("anna", "pale", "red", "long", "oval", "footballer"),
    Person("boris", "tan", "black", "short", "round", "politician"),
    Person("carla", "brown", "blond", "curly", "round", "singer"),
    Person("diana", "dark", "grey", "short", "oval", "judge"),
    Person("elena", "tan", "pink", "long", "oval", "actress"),
    Person("felix", "pale", "black", "bald", "round", "coach"),
    Person("grace", "dark", "blond", "long", "round", "minister"),
    Person("hugo", "brown", "brown", "short", "oval", "chef"),
)

EXPRESSIONS = ("smile", "frown", "surprise")
EMOTION_WORDS: dict[str, tuple[str, ...]] = {
    "smile": ("happy", "cheerful", "joyful", "delighted", "smiling"),
    "frown": ("sad", "upset", "gloomy", "unhappy", "frowning"),
    "surprise": ("surprised", "shocked", "astonished", "stunned", "amazed"),
}
# stronger words: rare in real captions (10%), common in sentiment-flipped ones (50%), like the artefacts of
# DGM4's text-attribute generator: evidence of a manipulation, never proof
RARE_EMOTION_WORDS: dict[str, tuple[str, ...]] = {
    "smile": ("overjoyed", "thrilled", "ecstatic"),
    "frown": ("miserable", "devastated", "heartbroken"),
    "surprise": ("startled", "flabbergasted", "speechless"),
}
RARE_WORD_P = {"original": 0.1, "flipped": 0.5}
# what an ideal captioner says about a face with this expression
EXPRESSION_PHRASES: dict[str, tuple[str, ...]] = {
    "smile": ("is smiling", "smiles broadly", "looks happy"),
    "frown": ("is frowning", "frowns", "looks sad"),
    "surprise": ("looks surprised", "has an open mouth and raised eyebrows", "seems shocked"),
}

# place -> (preposition, place word, what a captioner / explanation says about it)
PLACES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "beach": ("at the", "beach", ("blue sea and yellow sand", "waves under a bright sun")),
    "park": ("in the", "park", ("green grass and a leafy tree", "a lawn with a tree")),
    "city": ("in the", "city", ("tall grey buildings with windows", "a street with office towers")),
    "stadium": (
        "at the",
        "stadium",
        ("a green pitch with white lines and crowded stands", "floodlit stands"),
    ),
    "office": ("in the", "office", ("a beige wall, a window and a wooden desk", "a desk under a window")),
    "mountains": ("in the", "mountains", ("snowy peaks under a pale sky", "white mountain tops")),
}

ACTIONS_ING = (
    "while giving a speech",
    "while talking to reporters",
    "after the final match",
    "during a visit",
    "while posing for photos",
    "before the meeting",
)
ACTIONS_3S = (
    "waves to fans",
    "speaks to reporters",
    "poses for photos",
    "arrives",
    "walks",
    "gives a speech",
)
ACTIONS_PL = ("meet", "pose for photos", "speak to reporters", "arrive together", "walk", "shake hands")
# trailing clauses; `$` and `%` exercise the protocol's word-index shift, always after the grounded words
TAILS = (
    "",
    " on Monday",
    " on Friday",
    " last week",
    " in 2019",
    " after a $5 million deal",
    " as prices rose 3%",
)
