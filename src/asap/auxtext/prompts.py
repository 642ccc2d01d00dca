"""The LMA instructions (paper §3.1) and the hash that ties a cache to the prompt that made it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from asap.errors import PromptError

TASKS = ("caption", "explanation")
TEXT_SLOT = "{text}"

# the paper's instructions (§3.1; the official code sends the same strings)
DEFAULT_CAPTION_PROMPT = "Give the caption of this picture"
DEFAULT_EXPLANATION_PROMPT = (
    'Refer to the following text to describe the specific information of the corresponding image: "{text}"'
)


@dataclass(frozen=True)
class PromptSpec:
    """The instruction for one task: a template (``{text}`` is the record text) and an optional system prompt."""

    task: str
    template: str
    system: str | None = None

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise PromptError(f"task must be one of {TASKS}, got {self.task!r}")
        if not self.template.strip():
            raise PromptError(f"the {self.task} prompt template is empty")
        if self.task == "explanation" and TEXT_SLOT not in self.template:
            raise PromptError(f"the explanation prompt must contain {TEXT_SLOT} (where the record text goes)")

    def render(self, text: str | None = None) -> str:
        """The user message: the template with ``{text}`` replaced (a plain replace: braces in text are safe)."""
        if self.task == "explanation":
            if text is None:
                raise PromptError("the explanation prompt needs the record text")
            return self.template.replace(TEXT_SLOT, text)
        return self.template

    @property
    def hash(self) -> str:
        """16 hex digits of sha256 over (task, template, system): stored with every cache line."""
        payload = json.dumps([self.task, self.template, self.system], ensure_ascii=False)
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


def chat_messages(prompt: str, system: str | None, *, image: bool = False) -> list[dict]:
    """OpenAI/transformers chat messages; with ``image`` the user turn is [image, text] content parts."""
    messages: list[dict] = [{"role": "system", "content": system}] if system else []
    content: str | list[dict] = [{"type": "image"}, {"type": "text", "text": prompt}] if image else prompt
    messages.append({"role": "user", "content": content})
    return messages
