"""andlib.text.loopback: the loopback OpenAI-compatible chat server."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from andlib.text.loopback import LoopbackServer, Reply, completion, question


def post(url: str, body: dict) -> tuple[int, dict]:
    req = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def chat(text) -> dict:
    return {"model": "m", "messages": [{"role": "user", "content": text}]}


def test_it_answers_chat_completions_and_records_every_request():
    server = LoopbackServer()
    try:
        status, reply = post(f"{server.url}/chat/completions", chat("describe a dog"))
        assert status == 200
        assert reply["choices"][0]["message"]["content"] == "summary of: describe a dog"
        assert server.count == 1 and server.bodies[0]["messages"][0]["content"] == "describe a dog"
        status, reply = post(f"{server.url}/models", chat("x"))
        assert status == 404 and "no route" in reply["error"]["message"]
    finally:
        server.close()


def test_scripted_replies_and_a_request_limit():
    def respond(n, body):
        return (
            Reply(429, {"error": {"message": "slow down"}}) if n == 0 else (200, completion("ok"))
        )

    server = LoopbackServer(respond, max_requests=2)
    try:
        assert post(f"{server.url}/chat/completions", chat("a"))[0] == 429
        assert post(f"{server.url}/chat/completions", chat("b"))[1]["choices"][0]["message"] == {
            "role": "assistant",
            "content": "ok",
        }
        with pytest.raises((urllib.error.URLError, ConnectionError)):
            post(f"{server.url}/chat/completions", chat("c"))  # past max_requests: refused
    finally:
        server.close()


def test_question_reads_the_last_turns_text():
    assert question(chat("hello")) == "hello"
    parts = [{"type": "text", "text": "what is it?"}, {"type": "input_audio"}]
    assert question(chat(parts)) == "what is it?"
    assert question(chat(["not a part"])) == ""
