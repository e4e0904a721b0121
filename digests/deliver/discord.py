"""The Discord target: the digest's embed messages, POSTed in order to a channel webhook.

Discord answers 204 (or 200 with `?wait=true`), 400 with a JSON error (code 50035
"Invalid Form Body" names the offending field), 401/403/404 for a deleted or wrong
webhook (permanent), and 429 with `retry_after` seconds in the JSON body. An empty rate
limit bucket (`X-RateLimit-Remaining: 0`) pauses for `X-RateLimit-Reset-After` before the
next message. The webhook URL is a secret: it never appears in an error or a log line.
"""

from __future__ import annotations

import json

import httpx

from core.config import DiscordTarget
from core.digest import Digest
from digests import discord_embeds
from digests.deliver import Progress
from digests.deliver.chat import Answer, Part, permanent_status, post_parts, seconds


def judge(response: httpx.Response) -> Answer:
    pause = 0.0
    if response.headers.get("x-ratelimit-remaining") == "0":
        pause = seconds(response.headers.get("x-ratelimit-reset-after"), 0.0)
    if response.status_code in (200, 204):
        return Answer(accepted=True, pause=pause)
    try:
        body = response.json()
    except ValueError:
        body = {}
    body = body if isinstance(body, dict) else {}
    if response.status_code == 429:
        wait = body.get("retry_after", response.headers.get("retry-after", 1))
        return Answer(accepted=False, wait=seconds(wait))
    detail = body.get("message") or response.reason_phrase
    if "code" in body:
        detail = f"{detail} (code {body['code']})"
    if errors := body.get("errors"):
        detail += f": {json.dumps(errors)[:200]}"
    return Answer(accepted=False, reason=detail, permanent=permanent_status(response.status_code))


def post_to_discord(digest: Digest, target: DiscordTarget, progress: Progress) -> str:
    messages = discord_embeds.messages(digest)
    parts = [Part(json.dumps(message.payload()).encode()) for message in messages]
    total = post_parts(
        "Discord",
        target.webhook_url,
        parts,
        judge,
        progress,
        timeout=target.timeout,
        secrets=(target.webhook_url, target.webhook_url.rsplit("/", 1)[-1]),
    )
    return f"{total} message{'s' if total > 1 else ''} to Discord ({target.label})"
