"""The OpenAI-compatible backend against a stand-in server on 127.0.0.1 that fails requests to exercise retries."""

from __future__ import annotations

import base64
import io
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from PIL import Image

from asap.auxtext import GenContext, GenerationJob, PromptSpec, run_generation
from asap.auxtext.backends.base import GenRequest
from asap.auxtext.backends.openai_compat import OpenAIBackend
from asap.auxtext.prompts import DEFAULT_CAPTION_PROMPT, DEFAULT_EXPLANATION_PROMPT
from asap.data.aux_cache import AuxTextCache


class StandIn(BaseHTTPRequestHandler):
    """/v1/chat/completions: the first attempt of every prompt gets a 503 (SLOW: a stall past the timeout);
    REJECT -> 400, EMPTY -> empty content, DOWN -> always 503; images are decoded and their size echoed."""

    attempts: Counter = Counter()
    bodies: list = []
    lock = threading.Lock()

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        content = body["messages"][-1]["content"]
        prompt = (
            content if isinstance(content, str) else next(c["text"] for c in content if c["type"] == "text")
        )
        with self.lock:
            StandIn.attempts[prompt] += 1
            first = StandIn.attempts[prompt] == 1
            StandIn.bodies.append(body)
        if self.path != "/v1/chat/completions" or "REJECT" in prompt:
            return self._send(400, {"error": {"message": "bad request"}})
        if "DOWN" in prompt or (first and "SLOW" not in prompt):
            return self._send(503, {"error": {"message": "busy"}})
        if first and "SLOW" in prompt:
            time.sleep(0.6)
        text = "" if "EMPTY" in prompt else f"answer to {prompt[-30:]}"
        if not isinstance(content, str):
            url = next(c["image_url"]["url"] for c in content if c["type"] == "image_url")
            header, data = url.split(",", 1)
            assert header == "data:image/jpeg;base64"
            with Image.open(io.BytesIO(base64.b64decode(data))) as img:
                text = f"a {img.width}x{img.height} picture"
        self._send(
            200,
            {
                "choices": [{"message": {"role": "assistant", "content": text}}],
                "usage": {"completion_tokens": len(text.split())},
            },
        )

    def _send(self, code: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        try:
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client timed out
            pass


@pytest.fixture
def server() -> Iterator[str]:
    StandIn.attempts = Counter()
    StandIn.bodies = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), StandIn)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()
    httpd.server_close()


def backend(url: str, task: str, root: Path, **kw) -> OpenAIBackend:
    template = DEFAULT_CAPTION_PROMPT if task == "caption" else DEFAULT_EXPLANATION_PROMPT
    params = {
        "concurrency": 4,
        "timeout_s": 0.3,
        "max_retries": 3,
        "backoff_s": 0.01,
        "backoff_max_s": 0.05,
    } | kw
    return OpenAIBackend(
        GenContext(PromptSpec(task, template), 16, root), model="stand-in", base_url=url, **params
    )


def test_explanations_survive_busy_and_stalled_requests(server: str, tmp_path: Path) -> None:
    texts = ["One.", "Two SLOW.", "Three EMPTY.", "Four REJECT.", "Five DOWN.", "Six.", "Seven.", "Eight."]
    records = [{"id": i, "image": f"img/{i}.jpg", "text": t, "fake_cls": "orig"} for i, t in enumerate(texts)]
    (tmp_path / "train.json").write_text(json.dumps(records))
    job = GenerationJob(
        data_root=tmp_path,
        metadata=tmp_path / "train.json",
        task="explanation",
        output=tmp_path / "explanation.jsonl",
    )
    b = backend(server, "explanation", tmp_path)
    stats = run_generation(job, b)
    b.close()
    cache = AuxTextCache(job.output)
    assert stats.done == 5 and stats.failed == 3
    assert cache.get("img/1.jpg", "Two SLOW.").startswith("answer to")  # retried after the timeout
    reasons = {k[1]: v for k, v in cache.failed.items()}
    assert reasons["Three EMPTY."] == "empty output"
    assert reasons["Four REJECT."].startswith("HTTP 400")  # not retried
    assert "gave up after 4 attempts" in reasons["Five DOWN."] and "HTTP 503" in reasons["Five DOWN."]
    attempts = {p.rsplit('"', 2)[1]: n for p, n in StandIn.attempts.items()}
    assert attempts["Four REJECT."] == 1 and attempts["Five DOWN."] == 4 and attempts["One."] == 2
    body = StandIn.bodies[0]
    assert body["model"] == "stand-in" and body["max_tokens"] == 16 and body["temperature"] == 0.0
    assert stats.tokens > 0 and stats.tokens_per_s > 0


def test_captions_send_the_image_as_a_data_url_and_fail_unreadable_images(
    server: str, tmp_path: Path
) -> None:
    Image.new("RGB", (37, 21), "green").save(tmp_path / "a.jpg")
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8 truncated")
    b = backend(server, "caption", tmp_path)
    requests = [
        GenRequest("a.jpg", DEFAULT_CAPTION_PROMPT, tmp_path / "a.jpg"),
        GenRequest("bad.jpg", DEFAULT_CAPTION_PROMPT, tmp_path / "bad.jpg"),
    ]
    good, bad = b.generate(requests)
    b.close()
    assert good.output == "a 37x21 picture"
    assert bad.output is None and "cannot read image" in bad.error
    assert len(StandIn.bodies) == 2  # one 503 and its retry; the broken image never left
