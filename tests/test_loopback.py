"""The loopback servers speak the real wire formats to the real client libraries."""

from __future__ import annotations

import http.client
import json
import smtplib
import zlib
from concurrent.futures import ThreadPoolExecutor
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import firecrawl
import httpx
import openai
import pydantic
import pytest
from loopback import (
    ChatRequest,
    FeedServer,
    FirecrawlServer,
    OpenAIServer,
    SelfSignedCert,
    SilentServer,
    SlackReceiver,
    SMTPServer,
    closed_port,
    gzip_bomb_size,
)

# --- OpenAI -------------------------------------------------------------------------------


class Story(pydantic.BaseModel):
    id: str
    headline: str


class Digest(pydantic.BaseModel):
    stories: list[Story]


STORY_SCHEMA = {
    "type": "object",
    "properties": {"id": {"type": "string"}, "headline": {"type": "string"}},
    "required": ["id", "headline"],
    "additionalProperties": False,
}
DIGEST_FORMAT: Any = {
    "type": "json_schema",
    "json_schema": {
        "name": "Digest",
        "strict": True,
        "schema": {
            "type": "object",
            "properties": {"stories": {"type": "array", "items": STORY_SCHEMA}},
            "required": ["stories"],
            "additionalProperties": False,
        },
    },
}


def client(server: OpenAIServer, max_retries: int = 0) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=server.base_url, api_key="sk-test", max_retries=max_retries, timeout=10
    )


def test_openai_structured_answer_via_create(openai_server: OpenAIServer) -> None:
    openai_server.reply({"stories": [{"id": "s1", "headline": "Quake"}]}, reasoning_tokens=64)
    resp = client(openai_server).chat.completions.create(
        model="o1",
        messages=[{"role": "developer", "content": "Rank."}, {"role": "user", "content": "s1"}],
        response_format=DIGEST_FORMAT,
        max_completion_tokens=5000,
    )
    assert json.loads(resp.choices[0].message.content or "") == {
        "stories": [{"id": "s1", "headline": "Quake"}]
    }
    assert resp.choices[0].finish_reason == "stop"
    assert resp.model == "o1-2024-12-17"
    usage = resp.usage
    assert usage is not None and usage.completion_tokens_details is not None
    assert usage.completion_tokens_details.reasoning_tokens == 64
    assert usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    body = openai_server.chat_requests[0].body
    assert body["response_format"]["type"] == "json_schema"
    assert body["max_completion_tokens"] == 5000


def test_openai_parse_with_callable_answer(openai_server: OpenAIServer) -> None:
    def answer(req: ChatRequest) -> dict[str, object]:
        ids = [w for w in req.user_text.split() if w.startswith("id-")]
        return {"stories": [{"id": i, "headline": f"about {i}"} for i in ids]}

    openai_server.reply(answer)
    resp = client(openai_server).chat.completions.parse(
        model="o1",
        messages=[{"role": "user", "content": "items: id-1 id-2"}],
        response_format=Digest,
    )
    parsed = resp.choices[0].message.parsed
    assert parsed == Digest(
        stories=[Story(id="id-1", headline="about id-1"), Story(id="id-2", headline="about id-2")]
    )


def test_openai_refusal_and_truncation(openai_server: OpenAIServer) -> None:
    c = client(openai_server)
    openai_server.reply_refusal()
    msg = (
        c.chat.completions.parse(
            model="o1", messages=[{"role": "user", "content": "x"}], response_format=Digest
        )
        .choices[0]
        .message
    )
    assert msg.refusal and msg.parsed is None and msg.content is None
    openai_server.reply_truncated()
    with pytest.raises(openai.LengthFinishReasonError):
        c.chat.completions.parse(
            model="o1", messages=[{"role": "user", "content": "x"}], response_format=Digest
        )


def test_openai_context_length_exceeded(openai_server: OpenAIServer) -> None:
    openai_server.set_context_window("o1", 100)
    with pytest.raises(openai.BadRequestError) as info:
        client(openai_server).chat.completions.create(
            model="o1", messages=[{"role": "user", "content": "word " * 200}]
        )
    assert info.value.code == "context_length_exceeded"
    assert info.value.param == "messages"
    assert openai_server.pending == 0  # rejected before any scripted reply


def test_openai_reasoning_model_rules(openai_server: OpenAIServer) -> None:
    c = client(openai_server)
    with pytest.raises(openai.BadRequestError) as info:
        c.chat.completions.create(
            model="o1", messages=[{"role": "user", "content": "x"}], max_tokens=100
        )
    assert info.value.code == "unsupported_parameter" and info.value.param == "max_tokens"
    assert "max_completion_tokens" in info.value.message
    with pytest.raises(openai.BadRequestError) as info:
        c.chat.completions.create(
            model="o3-mini", messages=[{"role": "user", "content": "x"}], temperature=0.2
        )
    assert info.value.code == "unsupported_value" and info.value.param == "temperature"
    with pytest.raises(openai.BadRequestError) as info:
        c.chat.completions.create(
            model="o1-mini",
            messages=[{"role": "system", "content": "s"}, {"role": "user", "content": "x"}],
        )
    assert info.value.param == "messages[0].role"
    with pytest.raises(openai.BadRequestError) as info:
        c.chat.completions.create(
            model="o1-mini",
            messages=[{"role": "user", "content": "x"}],
            response_format=DIGEST_FORMAT,
        )
    assert info.value.param == "response_format"
    loose: Any = {
        "type": "json_schema",
        "json_schema": {
            "name": "D",
            "strict": True,
            "schema": {"type": "object", "properties": {"a": {"type": "string"}}},
        },
    }
    with pytest.raises(openai.BadRequestError) as info:
        c.chat.completions.create(
            model="o1", messages=[{"role": "user", "content": "x"}], response_format=loose
        )
    assert "additionalProperties" in info.value.message
    openai_server.reply("fine")
    ok = c.chat.completions.create(
        model="gpt-4o",
        temperature=0.2,
        max_tokens=50,
        messages=[{"role": "system", "content": "s"}, {"role": "user", "content": "x"}],
    )
    assert ok.choices[0].message.content == "fine"


def test_openai_rate_limit_and_retry(openai_server: OpenAIServer) -> None:
    openai_server.reply_rate_limit(retry_after=2)
    with pytest.raises(openai.RateLimitError) as info:
        client(openai_server).chat.completions.create(
            model="o1", messages=[{"role": "user", "content": "x"}]
        )
    assert info.value.code == "rate_limit_exceeded"
    assert info.value.response.headers["retry-after"] == "2"
    # The client honours a short Retry-After and retries on its own.
    openai_server.reply_error(503, retry_after=0.05)
    openai_server.reply("after retry")
    out = client(openai_server, max_retries=1).chat.completions.create(
        model="o1", messages=[{"role": "user", "content": "x"}]
    )
    assert out.choices[0].message.content == "after retry"
    assert [r.status for r in openai_server.chat_requests] == [429, 503, 200]


def test_openai_streaming_and_default(openai_server: OpenAIServer) -> None:
    openai_server.set_default(lambda req: f"echo {req.user_text}")
    stream = client(openai_server).chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "a fairly long question"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo a fairly long question"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_openai_unscripted_fails_fast(openai_server: OpenAIServer) -> None:
    with pytest.raises(openai.InternalServerError):
        openai.OpenAI(base_url=openai_server.base_url, api_key="k").chat.completions.create(
            model="o1", messages=[{"role": "user", "content": "x"}]
        )
    assert len(openai_server.chat_requests) == 1  # x-should-retry: false


# --- Firecrawl ----------------------------------------------------------------------------


def test_firecrawl_scrape_markdown_and_links(firecrawl_server: FirecrawlServer) -> None:
    firecrawl_server.add_page(
        "https://news.example/a",
        "# Headline\n\nBody.",
        ["https://news.example/b"],
        title="Headline",
    )
    app = firecrawl.Firecrawl(api_key="fc-test", api_url=firecrawl_server.url, timeout=10)
    doc = app.scrape("https://news.example/a", formats=["markdown", "links"])
    assert doc.markdown == "# Headline\n\nBody."
    assert doc.links == ["https://news.example/b"]
    assert doc.metadata is not None and doc.metadata.title == "Headline"
    assert doc.metadata.status_code == 200
    sent = firecrawl_server.scrape_requests()[0]
    assert sent["url"] == "https://news.example/a"
    assert sent["formats"] == ["markdown", "links"]


def test_firecrawl_errors(firecrawl_server: FirecrawlServer) -> None:
    bad = firecrawl.Firecrawl(api_key="wrong", api_url=firecrawl_server.url, timeout=10)
    with pytest.raises(firecrawl.UnauthorizedError):
        bad.scrape("https://news.example/a", formats=["markdown"])
    firecrawl_server.fail_rate_limit(retry_after=3)
    app = firecrawl.Firecrawl(api_key="fc-test", api_url=firecrawl_server.url, timeout=10)
    with pytest.raises(firecrawl.RateLimitError) as info:
        app.scrape("https://news.example/a", formats=["markdown"])
    assert info.value.status_code == 429
    assert info.value.response is not None
    assert info.value.response.headers["Retry-After"] == "3"


# --- Feeds --------------------------------------------------------------------------------

RSS = b'<?xml version="1.0"?><rss version="2.0"><channel><title>T</title></channel></rss>'


def test_feed_conditional_get(feed_server: FeedServer) -> None:
    url = feed_server.add("/feed.xml", RSS)
    first = httpx.get(url)
    assert first.status_code == 200 and first.content == RSS
    etag, modified = first.headers["etag"], first.headers["last-modified"]
    assert httpx.get(url, headers={"If-None-Match": etag}).status_code == 304
    assert httpx.get(url, headers={"If-Modified-Since": modified}).status_code == 304
    feed_server.ignore_conditional = True
    assert httpx.get(url, headers={"If-None-Match": etag}).status_code == 200
    assert feed_server.hits("/feed.xml") == 4


def test_feed_gzip_and_bomb(feed_server: FeedServer) -> None:
    url = feed_server.add("/feed.xml", RSS * 20, gzip=True)
    resp = httpx.get(url)
    assert resp.headers["content-encoding"] == "gzip" and resp.content == RSS * 20
    bomb = feed_server.add_gzip_bomb("/bomb.xml", inflated_mib=64)
    with httpx.stream("GET", bomb) as r:
        assert r.headers["content-encoding"] == "gzip"
        raw = b"".join(r.iter_raw())
    assert len(raw) == gzip_bomb_size(64) < 70_000
    inflate = zlib.decompressobj(zlib.MAX_WBITS | 16)
    total = sum(len(inflate.decompress(raw[i : i + 65536])) for i in range(0, len(raw), 65536))
    assert total == 64 << 20 and inflate.eof


def test_feed_faults(feed_server: FeedServer) -> None:
    url = feed_server.add("/feed.xml", RSS)
    feed_server.add_status("/feed.xml", 429, retry_after=30, times=1)
    limited = httpx.get(url)
    assert limited.status_code == 429 and limited.headers["retry-after"] == "30"
    assert httpx.get(url).status_code == 200
    feed_server.add_redirect("/a", "/b")
    feed_server.add_redirect("/b", "/a", 301)
    with pytest.raises(httpx.TooManyRedirects):
        httpx.get(feed_server.url_for("/a"), follow_redirects=True)
    feed_server.add_drop("/cut.xml", RSS)
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(feed_server.url_for("/cut.xml"))
    feed_server.add_trickle("/slow.xml", 0.05)
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(feed_server.url_for("/slow.xml"), timeout=httpx.Timeout(5, read=0.01))
    assert httpx.get(feed_server.url_for("/missing")).status_code == 404


def test_feed_concurrency_with_latency() -> None:
    with FeedServer(latency=0.05) as server:
        for i in range(200):
            server.add(f"/f{i}.xml", RSS)

        def fetch(i: int) -> int:
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
            conn.request("GET", f"/f{i}.xml")
            status = conn.getresponse().status
            conn.close()
            return status

        with ThreadPoolExecutor(100) as pool:
            statuses = list(pool.map(fetch, range(200)))
    assert statuses == [200] * 200
    assert sum(server.hit_counts.values()) == 200


def test_feed_serves_shared_captures(feed_server: FeedServer, shared_data: Path) -> None:
    urls = feed_server.add_directory(shared_data / "feeds")
    resp = httpx.get(urls["real-world/bbc-news-world.xml"])
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/rss+xml"


# --- SMTP ---------------------------------------------------------------------------------


def _mail() -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "bot@x.test", "me@x.test", "Digest ✓"
    msg.set_content("Top stories\n.leading dot\n")
    return msg


def test_smtp_plain(smtp_server: SMTPServer) -> None:
    with smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=5) as s:
        s.send_message(_mail())
    (got,) = smtp_server.messages
    assert got.rcpt_tos == ["me@x.test"] and not got.tls
    assert got.message["Subject"] == "Digest ✓"
    assert got.message.get_content() == "Top stories\n.leading dot\n"


def test_smtp_starttls_with_self_signed_cert(smtp_tls_server: SMTPServer) -> None:
    assert smtp_tls_server.cert is not None
    with smtplib.SMTP("localhost", smtp_tls_server.port, timeout=5) as s:
        s.starttls(context=smtp_tls_server.cert.client_context())
        s.send_message(_mail())
    assert smtp_tls_server.messages[0].tls


def test_smtp_auth_and_implicit_tls(tls_cert: SelfSignedCert) -> None:
    with SMTPServer(starttls=tls_cert, auth=("bot", "s3cret")) as server:
        with smtplib.SMTP("127.0.0.1", server.port, timeout=5) as s:
            s.starttls(context=tls_cert.client_context())
            with pytest.raises(smtplib.SMTPAuthenticationError):
                s.login("bot", "wrong")
            s.login("bot", "s3cret")
            s.send_message(_mail())
        assert server.messages[0].auth_user == "bot"
        # smtplib.login falls back through PLAIN then LOGIN before giving up.
        assert [a.success for a in server.auth_attempts] == [False, False, True]
        with (
            smtplib.SMTP("127.0.0.1", server.port, timeout=5) as s,
            pytest.raises(smtplib.SMTPSenderRefused),
        ):
            s.send_message(_mail())  # auth required
    with SMTPServer(implicit_tls=tls_cert, auth=("bot", "s3cret")) as server:
        with smtplib.SMTP_SSL(
            "127.0.0.1", server.port, timeout=5, context=tls_cert.client_context()
        ) as s:
            s.login("bot", "s3cret")
            s.send_message(_mail())
        assert server.messages[0].tls


def test_smtp_faults(smtp_server: SMTPServer) -> None:
    smtp_server.fail_rcpt("450 4.2.0 Mailbox busy")
    with (
        smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=5) as s,
        pytest.raises(smtplib.SMTPRecipientsRefused),
    ):
        s.send_message(_mail())
    smtp_server.fail_data("554 5.7.1 Rejected")
    with (
        smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=5) as s,
        pytest.raises(smtplib.SMTPDataError),
    ):
        s.send_message(_mail())
    smtp_server.drop_during_data()
    s = smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=5)
    with pytest.raises(smtplib.SMTPServerDisconnected):
        s.send_message(_mail())
    s.close()
    assert smtp_server.messages == []
    with pytest.raises(ConnectionRefusedError):
        smtplib.SMTP("127.0.0.1", closed_port(), timeout=2)
    with SilentServer() as silent, pytest.raises(smtplib.SMTPServerDisconnected):
        smtplib.SMTP("127.0.0.1", silent.port, timeout=0.2)


# --- Slack --------------------------------------------------------------------------------


def test_slack_accepts_and_validates(slack_receiver: SlackReceiver) -> None:
    url = slack_receiver.webhook_url
    ok = {
        "text": "Digest",
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": "Today"}},
            {"type": "section", "text": {"type": "mrkdwn", "text": "*Quake* hits"}},
            {"type": "divider"},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": "3 sources"}]},
        ],
    }
    resp = httpx.post(url, json=ok)
    assert (resp.status_code, resp.text) == (200, "ok")
    section = {"type": "section", "text": {"type": "mrkdwn", "text": "x"}}
    resp = httpx.post(url, json={"text": "t", "blocks": [section] * 51})
    assert (resp.status_code, resp.text) == (400, "invalid_blocks")
    long_header = {"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}
    assert httpx.post(url, json={"blocks": [long_header]}).text == "invalid_blocks"
    assert httpx.post(url, json={"text": ""}).text == "no_text"
    assert httpx.post(url, content=b"{not json").text == "invalid_payload"
    slack_receiver.fail_rate_limit(retry_after=5)
    limited = httpx.post(url, json=ok)
    assert limited.status_code == 429 and limited.headers["retry-after"] == "5"
    assert slack_receiver.messages == [ok]
    assert [d.status for d in slack_receiver.deliveries] == [200, 400, 400, 400, 400, 429]
