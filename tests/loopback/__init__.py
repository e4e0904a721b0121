"""Loopback test servers: real wire protocols on 127.0.0.1, for tests without mocks.

Import as ``loopback`` (tests/ is on pythonpath). Each server starts on an ephemeral
port in a daemon thread: ``start()``/``stop()`` or use it as a context manager.
"""

from .discord import DiscordWebhook
from .feeds import FeedServer, gzip_bomb, gzip_bomb_size, http_date, serve_directory
from .firecrawl_server import FirecrawlServer
from .net import SilentServer, closed_port
from .openai_server import ChatRequest, ModelSpec, OpenAIServer
from .slack import SlackReceiver
from .smtp import ReceivedMessage, SMTPServer
from .telegram import TelegramBot
from .tls import SelfSignedCert, make_self_signed_cert
from .webhook import WebhookReceiver

__all__ = [
    "ChatRequest",
    "DiscordWebhook",
    "FeedServer",
    "FirecrawlServer",
    "ModelSpec",
    "OpenAIServer",
    "ReceivedMessage",
    "SMTPServer",
    "SelfSignedCert",
    "SilentServer",
    "SlackReceiver",
    "TelegramBot",
    "WebhookReceiver",
    "closed_port",
    "gzip_bomb",
    "gzip_bomb_size",
    "http_date",
    "make_self_signed_cert",
    "serve_directory",
]
