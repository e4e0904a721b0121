"""HMAC signatures for the web app: CSRF tokens, login cookies and vote links.

The standard library's hmac does the job in a few lines; itsdangerous would add a
dependency for the same HMAC-SHA256 and a timestamp.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from urllib.parse import urlencode

from core.config import ServeConfig
from core.digest import Digest
from core.votes import VoteLinks

# How long a vote link in an email or Slack message stays good.
VOTE_LINK_LIFETIME = timedelta(days=14)


def load_secret(configured: str | None, state_dir: Path) -> bytes:
    """The configured secret, else one kept in the state directory (made on first use)."""
    if configured:
        return configured.encode()
    path = state_dir / "web-secret"
    if not path.exists():
        state_dir.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_hex(32))
    return path.read_text().strip().encode()


def sign(secret: bytes, *parts: str) -> str:
    message = "\x1f".join(parts).encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def verify(secret: bytes, signature: str, *parts: str) -> bool:
    return hmac.compare_digest(sign(secret, *parts), signature)


@dataclass(frozen=True)
class VoteLink:
    profile: str
    story_id: str
    value: int
    expires: int  # Unix seconds

    def parts(self) -> tuple[str, ...]:
        return ("vote", self.profile, self.story_id, str(self.value), str(self.expires))

    def query(self, secret: bytes) -> str:
        return urlencode(
            {
                "profile": self.profile,
                "story": self.story_id,
                "value": self.value,
                "expires": self.expires,
                "sig": sign(secret, *self.parts()),
            }
        )


def vote_url(
    public_url: str, secret: bytes, profile: str, story_id: str, value: int, now: datetime
) -> str:
    """A signed, expiring link that asks to confirm one vote (for email and Slack digests)."""
    expires = int((now + VOTE_LINK_LIFETIME).timestamp())
    link = VoteLink(profile, story_id, value, expires)
    return f"{public_url.rstrip('/')}/vote?{link.query(secret)}"


def digest_vote_links(serve: ServeConfig, state_dir: Path, digest: Digest) -> VoteLinks | None:
    """The digest's vote links when serve.public_url is set, else None (no links rendered).
    They expire counted from the digest's creation, so a re-sent digest carries the same."""
    if not serve.public_url:
        return None
    link = partial(vote_url, serve.public_url, load_secret(serve.secret, state_dir), digest.profile)
    made = digest.created_at
    stories = [trend.story for trend in digest.trends if trend.story]
    return VoteLinks({story: (link(story, 1, made), link(story, -1, made)) for story in stories})
