"""URLs: canonical forms, so one article reached through different links is one item; the
link a reader gets, which is the publisher's less its tracking parameters; and which links
are safe to show a reader."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, unquote_plus, urlencode, urlsplit, urlunsplit

_TRACKING_PREFIXES = ("utm_", "mc_", "pk_", "hsa_", "oly_", "__hs")
_TRACKING_NAMES = frozenset(
    {
        "fbclid",
        "gclid",
        "dclid",
        "msclkid",
        "yclid",
        "igshid",
        "_hsenc",
        "_hsmi",
        "mkt_tok",
        "ref_src",
        "cmpid",
        "ocid",
        "smid",
        "sr_share",
        "at_medium",
        "at_campaign",
        "ito",
        "ns_mchannel",
        "ns_source",
        "ns_campaign",
        "ns_linkname",
        "ns_fee",
        "taid",
        "guccounter",
    }
)
_DEFAULT_PORTS = {"http": 80, "https": 443}
# ASCII that may not appear raw in a URL path (browsers percent-encode it): left raw, a
# quote or angle bracket would end the link early in a mail client, Slack or Markdown.
# Non-ASCII stays as it is, so the identity of items already stored does not change.
_UNSAFE_IN_PATH = re.compile(r'[\x00-\x20"<>`{}|\\^\x7f]')


def _is_tracking(name: str) -> bool:
    name = name.lower()
    return name in _TRACKING_NAMES or name.startswith(_TRACKING_PREFIXES)


def _escape_unsafe(text: str) -> str:
    return _UNSAFE_IN_PATH.sub(lambda m: f"%{ord(m[0]):02X}", text)


def canonical_url(url: str) -> str:
    """Lower-case scheme and host, no default port, no fragment, no tracking parameters.

    An identity, not a link to show: its query is re-encoded (`?a` becomes `?a=`)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return url.strip()
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").rstrip(".")
    if ":" in host:  # an IPv6 literal keeps its brackets
        host = f"[{host}]"
    if port is not None and port != _DEFAULT_PORTS.get(scheme):
        host = f"{host}:{port}"
    if parts.username:
        host = f"{parts.username}@{host}"
    # (Most links have no query: parse_qsl and urlencode would give "" for a third of the
    # function's CPU.)
    query = parts.query and urlencode(
        [
            (key, value)
            for key, value in parse_qsl(parts.query, keep_blank_values=True)
            if not _is_tracking(key)
        ]
    )
    path = _escape_unsafe(parts.path) or ("/" if host else "")
    return urlunsplit((scheme, host, path, query, ""))


def reader_url(url: str) -> str:
    """The publisher's link as written, less its tracking parameters (`utm_source`, `fbclid`
    ...); characters that would end it early in a mail, Slack or Markdown are escaped."""
    url = url.strip()
    head, mark, fragment = url.partition("#")
    base, question, query = head.partition("?")
    if question:
        # Split by hand: parse_qsl and urlencode would rewrite what they keep.
        kept = [
            pair for pair in query.split("&") if not _is_tracking(unquote_plus(pair.split("=")[0]))
        ]
        query = "&".join(kept)
        question = "?" if query else ""
    return _escape_unsafe(base + question + query) + mark + _escape_unsafe(fragment)


def is_web_url(url: str) -> bool:
    return url.lower().startswith(("http://", "https://"))


def safe_location(url: str) -> str:
    """A server's URL without its password, for messages."""
    return re.sub(r"^(\w+://[^:/@]*):[^@]*@", r"\1@", url)
