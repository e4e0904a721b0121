"""Loopback test servers: real wire protocols on 127.0.0.1, for tests without mocks.

Import as ``loopback`` (tests/ is on pythonpath). Each server starts on an ephemeral
port in a daemon thread: ``start()``/``stop()`` or use it as a context manager.
"""

from .bluesky_server import BlueskyServer
from .discord import DiscordWebhook
from .feeds import FeedServer, gzip_bomb, gzip_bomb_size, http_date, serve_directory
from .firecrawl_server import FirecrawlServer
from .hn_server import HNServer
from .mastodon_server import MastodonServer
from .net import SilentServer, closed_port
from .openai_server import ChatRequest, ModelSpec, OpenAIServer
from .reddit_server import RedditServer
from .slack import SlackReceiver
from .smtp import ReceivedMessage, SMTPServer
from .telegram import TelegramBot
from .tls import SelfSignedCert, make_self_signed_cert
from .webhook import WebhookReceiver
from .x_server import Tweet, XServer

__all__ = [
    "BlueskyServer",
    "ChatRequest",
    "DiscordWebhook",
    "FeedServer",
    "FirecrawlServer",
    "HNServer",
    "MastodonServer",
    "ModelSpec",
    "OpenAIServer",
    "ReceivedMessage",
    "RedditServer",
    "SMTPServer",
    "SelfSignedCert",
    "SilentServer",
    "SlackReceiver",
    "TelegramBot",
    "Tweet",
    "WebhookReceiver",
    "XServer",
    "closed_port",
    "gzip_bomb",
    "gzip_bomb_size",
    "http_date",
    "make_self_signed_cert",
    "serve_directory",
]
