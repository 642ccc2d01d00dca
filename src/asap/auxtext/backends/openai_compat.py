"""`openai`: any OpenAI-compatible server (vLLM, llama.cpp server, Ollama, ...) via ``/v1/chat/completions``.

Standard library only. Requests run in a thread pool; timeouts, connection errors, HTTP 408/409/429/5xx are
retried with exponential back-off; other HTTP errors fail the sample at once. Images go as base64 data URLs.
"""

from __future__ import annotations

import json
import logging
import os
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from asap.auxtext.backends.base import Backend, GenContext, GenRequest, GenResult, image_data_url

log = logging.getLogger(__name__)
RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


class RequestFailed(Exception):
    """A request that failed for good (or whose retries ran out)."""


class OpenAIBackend(Backend):
    """Chat completions over HTTP; see the module docstring."""

    def __init__(
        self,
        context: GenContext,
        model: str,
        base_url: str = "http://127.0.0.1:8000/v1",
        model_name: str | None = None,
        api_key_env: str | None = "OPENAI_API_KEY",
        concurrency: int = 8,
        batch_size: int | None = None,
        timeout_s: float = 120.0,
        max_retries: int = 5,
        backoff_s: float = 1.0,
        backoff_max_s: float = 30.0,
        temperature: float = 0.0,
        extra_body: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(context)
        self.model = model
        self._model_name = model_name or model
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.api_key = os.environ.get(api_key_env) if api_key_env else None
        self.concurrency = max(1, concurrency)
        self.batch_size = batch_size or 4 * self.concurrency
        self.timeout_s, self.max_retries = timeout_s, max_retries
        self.backoff_s, self.backoff_max_s = backoff_s, backoff_max_s
        self.temperature = temperature
        self.extra_body = dict(extra_body or {})
        self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="aux-openai")

    @property
    def model_name(self) -> str:
        return self._model_name

    def settings(self) -> dict[str, Any]:
        return super().settings() | {"backend": "openai", "temperature": self.temperature} | self.extra_body

    def generate(self, requests: Sequence[GenRequest]) -> list[GenResult]:
        return list(self._pool.map(self._one, requests))

    def _one(self, request: GenRequest) -> GenResult:
        try:
            body = self._body(request)
        except OSError as err:  # unreadable image
            return GenResult.failed(err)
        try:
            reply = self._post_with_retries(body)
        except RequestFailed as err:
            return GenResult.failed(str(err))
        return _parse_reply(reply)

    def _body(self, request: GenRequest) -> dict[str, Any]:
        content: Any = request.prompt
        if request.image_path is not None:
            content = [
                {"type": "text", "text": request.prompt},
                {"type": "image_url", "image_url": {"url": image_data_url(request.image_path)}},
            ]
        system = self.context.prompt.system
        messages = ([{"role": "system", "content": system}] if system else []) + [
            {"role": "user", "content": content}
        ]
        return {
            "model": self.model,
            "messages": messages,
            "max_tokens": self.context.max_new_tokens,
            "temperature": self.temperature,
        } | self.extra_body

    def _post_with_retries(self, body: dict[str, Any]) -> dict[str, Any]:
        data = json.dumps(body).encode("utf-8")
        last = "no attempt"
        for attempt in range(self.max_retries + 1):
            if attempt:
                time.sleep(min(self.backoff_max_s, self.backoff_s * 2 ** (attempt - 1)))
            try:
                return self._post(data)
            except urllib.error.HTTPError as err:
                last = f"HTTP {err.code}: {_error_text(err)}"
                if err.code not in RETRY_STATUS:
                    raise RequestFailed(last) from err
            except (urllib.error.URLError, TimeoutError, ConnectionError, json.JSONDecodeError) as err:
                last = f"{type(err).__name__}: {getattr(err, 'reason', err)}"
            log.debug("attempt %d of %s failed: %s", attempt + 1, self.url, last)
        raise RequestFailed(f"gave up after {self.max_retries + 1} attempts; last: {last}")

    def _post(self, data: bytes) -> dict[str, Any]:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        req = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
        with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
            return json.loads(resp.read().decode("utf-8"))

    def close(self) -> None:
        self._pool.shutdown(wait=True)


def _parse_reply(reply: dict[str, Any]) -> GenResult:
    try:
        content = reply["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        return GenResult.failed(f"malformed reply: {json.dumps(reply)[:200]}")
    output = (content or "").strip()
    tokens = int((reply.get("usage") or {}).get("completion_tokens") or len(output.split()))
    return GenResult(output=output, tokens=tokens)


def _error_text(err: urllib.error.HTTPError) -> str:
    try:
        return err.read().decode("utf-8", "replace")[:200]
    except OSError:
        return str(err.reason)
