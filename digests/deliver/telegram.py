"""The Telegram target: the digest's HTML messages, sent in order with the Bot API.

`sendMessage` answers `{"ok": true, "result": ...}`, or `{"ok": false, "error_code": N,
"description": "..."}`: 400 (chat not found, bad HTML) and 401/403 (wrong token, bot
blocked or removed) are permanent; 429 carries `parameters.retry_after` seconds. The bot
token is a secret: it never appears in an error or a log line.
"""

from __future__ import annotations

import json

import httpx

from core.config import TelegramTarget
from core.digest import Digest
from digests import telegram_html
from digests.deliver import Progress
from digests.deliver.chat import Answer, Part, permanent_status, post_parts, seconds


def judge(response: httpx.Response) -> Answer:
    try:
        body = response.json()
    except ValueError:
        body = {}
    body = body if isinstance(body, dict) else {}
    if response.status_code == 200 and body.get("ok") is True:
        return Answer(accepted=True)
    parameters = body.get("parameters")
    parameters = parameters if isinstance(parameters, dict) else {}
    if response.status_code == 429:
        return Answer(accepted=False, wait=seconds(parameters.get("retry_after", 1)))
    reason = str(body.get("description") or response.reason_phrase)
    if moved := parameters.get("migrate_to_chat_id"):
        reason += f" (the group is now a supergroup: set chat_id to {moved})"
    return Answer(accepted=False, reason=reason, permanent=permanent_status(response.status_code))


def send_to_telegram(digest: Digest, target: TelegramTarget, progress: Progress) -> str:
    parts = [
        Part(
            json.dumps(
                {
                    "chat_id": target.chat_id,
                    "text": text,
                    "parse_mode": "HTML",
                    "link_preview_options": {"is_disabled": True},
                }
            ).encode()
        )
        for text in telegram_html.messages(digest)
    ]
    url = f"{target.api_url}/bot{target.bot_token}/sendMessage"
    total = post_parts(
        "Telegram",
        url,
        parts,
        judge,
        progress,
        timeout=target.timeout,
        secrets=(target.bot_token,),
    )
    return f"{total} message{'s' if total > 1 else ''} to Telegram ({target.label})"
