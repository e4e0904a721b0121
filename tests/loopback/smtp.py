"""SMTPServer: aiosmtpd on 127.0.0.1:<ephemeral> that records mail and can misbehave."""

from __future__ import annotations

import asyncio
import email
import email.policy
import ssl
import threading
from collections import deque
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any, Self, cast

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from ._http import HOST
from .lifecycle import Running
from .tls import SelfSignedCert


@dataclass(frozen=True)
class ReceivedMessage:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes  # raw DATA bytes as received (dot-unstuffed, CRLF line ends)
    # Parsed with email.policy.default from `data` with CRLF turned into "\n", so
    # get_content() compares equal to what the sender's EmailMessage.set_content() got.
    message: EmailMessage
    tls: bool  # the session was encrypted (STARTTLS or implicit TLS)
    auth_user: str | None  # the AUTH login, if the session authenticated

    @property
    def text(self) -> str:
        """The decoded text/plain body (empty if there is none)."""
        body = self.message.get_body(("plain",))
        return str(body.get_content()) if body is not None else ""


@dataclass(frozen=True)
class AuthAttempt:
    mechanism: str
    username: str
    success: bool


def _tls_context(tls: SelfSignedCert | ssl.SSLContext | None) -> ssl.SSLContext | None:
    return tls.server_context() if isinstance(tls, SelfSignedCert) else tls


class _Replies:
    """A FIFO of scripted SMTP replies, each used `times` times (None: forever)."""

    def __init__(self) -> None:
        self._items: deque[list[Any]] = deque()
        self._lock = threading.Lock()

    def push(self, reply: str, times: int | None) -> None:
        with self._lock:
            self._items.append([reply, times])

    def take(self) -> str | None:
        with self._lock:
            if not self._items:
                return None
            slot = self._items[0]
            if slot[1] is not None:
                slot[1] -= 1
                if slot[1] <= 0:
                    self._items.popleft()
            return str(slot[0])

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


class _SMTP(SMTP):
    """aiosmtpd's SMTP with one extra behaviour: hang up in the middle of DATA."""

    def __init__(self, owner: SMTPServer, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._owner = owner
        # Set after __init__, which warns (per connection) about AUTH without TLS.
        self._auth_require_tls = owner._auth_require_tls

    async def smtp_DATA(self, arg: str) -> None:
        envelope = self.envelope
        if envelope is not None and envelope.rcpt_tos and self._owner._drops.take() is not None:
            await self.push("354 End data with <CR><LF>.<CR><LF>")
            # Let the client start sending the body, then vanish without a reply.
            await self._reader.readuntil(b"\r\n")
            if self.transport is not None:
                cast(asyncio.Transport, self.transport).abort()
                # End the command loop now, not after it has parsed the buffered body.
                self.transport = None
            return
        await super().smtp_DATA(arg)


class _Handler:
    def __init__(self, owner: SMTPServer) -> None:
        self.owner = owner

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        reply = self.owner._rcpt_replies.take()
        if reply is not None:
            return reply.replace("{rcpt}", address)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        reply = self.owner._data_replies.take()
        if reply is not None:
            return reply
        data = cast(bytes, envelope.original_content or envelope.content or b"")
        transport = server.transport
        login = session.auth_data.decode() if isinstance(session.auth_data, bytes) else None
        msg = ReceivedMessage(
            mail_from=str(envelope.mail_from),
            rcpt_tos=list(envelope.rcpt_tos),
            data=data,
            message=email.message_from_bytes(
                data.replace(b"\r\n", b"\n"), policy=email.policy.default
            ),
            tls=transport is not None and transport.get_extra_info("ssl_object") is not None,
            auth_user=login if session.authenticated else None,
        )
        self.owner._store(msg)
        return "250 2.0.0 Ok: queued as LOOPBACK"


class _Controller(Controller):
    def __init__(self, owner: SMTPServer, **kwargs: Any) -> None:
        super().__init__(_Handler(owner), hostname=HOST, port=0, **kwargs)
        self.owner = owner

    def factory(self) -> SMTP:
        return _SMTP(self.owner, self.handler, **self.SMTP_kwargs)

    def _trigger_server(self) -> None:
        # Port 0 means "any"; learn the real port before aiosmtpd's readiness probe.
        assert self.server is not None
        self.port = cast(asyncio.Server, self.server).sockets[0].getsockname()[1]
        super()._trigger_server()  # type: ignore[no-untyped-call]


class SMTPServer(Running):
    """A recording SMTP server.

    starttls: offer STARTTLS with this cert/context (require_starttls=True refuses mail
    before it). implicit_tls: SMTPS, TLS from the first byte (port-465 style); the two
    are exclusive. auth=(user, password): advertise AUTH PLAIN/LOGIN and require it
    before MAIL (auth_required=False makes it optional); with TLS configured, AUTH is
    only offered inside TLS, as real servers do. refuse_auth=True: every AUTH fails 535.
    """

    def __init__(
        self,
        *,
        starttls: SelfSignedCert | ssl.SSLContext | None = None,
        require_starttls: bool = False,
        implicit_tls: SelfSignedCert | ssl.SSLContext | None = None,
        auth: tuple[str, str] | None = None,
        auth_required: bool | None = None,
        refuse_auth: bool = False,
        hostname: str = "localhost",
        data_size_limit: int = 32 * 1024 * 1024,
    ) -> None:
        if starttls is not None and implicit_tls is not None:
            raise ValueError("choose starttls or implicit_tls, not both")
        # The generated cert, when one was given, so tests can build a trusting client.
        self.cert = next(
            (c for c in (starttls, implicit_tls) if isinstance(c, SelfSignedCert)), None
        )
        self.credentials = auth
        self.refuse_auth = refuse_auth
        self._messages: list[ReceivedMessage] = []
        self._auth_attempts: list[AuthAttempt] = []
        self._lock = threading.Lock()
        self._rcpt_replies = _Replies()
        self._data_replies = _Replies()
        self._drops = _Replies()
        # With auth: AUTH only after STARTTLS when that is offered (implicit TLS is
        # encrypted already, but aiosmtpd only knows STARTTLS). Without auth: True
        # keeps AUTH from being advertised on a plain session.
        self._auth_require_tls = starttls is not None or not (auth or refuse_auth)
        smtp_kwargs: dict[str, Any] = {
            "tls_context": _tls_context(starttls),
            "require_starttls": require_starttls,
            "auth_required": (auth is not None) if auth_required is None else auth_required,
            "data_size_limit": data_size_limit,
            "timeout": 30,
        }
        if auth is not None or refuse_auth:
            smtp_kwargs["authenticator"] = self._authenticate
        self._controller_kwargs: dict[str, Any] = {
            "ssl_context": _tls_context(implicit_tls),
            "server_hostname": hostname,  # avoids a slow getfqdn() lookup
            "ready_timeout": 10,
            **smtp_kwargs,
        }
        self._controller: _Controller | None = None

    # lifecycle -------------------------------------------------------------------------

    def start(self) -> Self:
        if self._controller is not None:
            raise RuntimeError("SMTPServer already started")
        self._controller = _Controller(self, **self._controller_kwargs)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    @property
    def host(self) -> str:
        return HOST

    @property
    def port(self) -> int:
        if self._controller is None:
            raise RuntimeError("SMTPServer is not running")
        return int(self._controller.port)

    # records ---------------------------------------------------------------------------

    @property
    def messages(self) -> list[ReceivedMessage]:
        """Accepted messages (250 after DATA), in order."""
        with self._lock:
            return list(self._messages)

    @property
    def auth_attempts(self) -> list[AuthAttempt]:
        with self._lock:
            return list(self._auth_attempts)

    def _store(self, msg: ReceivedMessage) -> None:
        with self._lock:
            self._messages.append(msg)

    def _authenticate(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        mechanism: str,
        auth_data: Any,
    ) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        user, password = auth_data.login.decode(), auth_data.password.decode()
        ok = (
            not self.refuse_auth
            and self.credentials is not None
            and (user, password) == self.credentials
        )
        with self._lock:
            self._auth_attempts.append(AuthAttempt(mechanism, user, ok))
        return AuthResult(success=ok, handled=False, auth_data=user.encode() if ok else None)

    # faults ----------------------------------------------------------------------------

    def fail_rcpt(
        self,
        reply: str = "550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown",
        *,
        times: int | None = 1,
    ) -> None:
        """Answer the next `times` RCPT TO commands (None: all) with `reply`, e.g.
        "450 4.2.0 Mailbox busy". "{rcpt}" is replaced with the address."""
        self._rcpt_replies.push(reply, times)

    def fail_data(
        self, reply: str = "451 4.3.0 Error: queue file write error", *, times: int | None = 1
    ) -> None:
        """Answer the next `times` end-of-DATA with `reply` (message not stored)."""
        self._data_replies.push(reply, times)

    def drop_during_data(self, *, times: int | None = 1) -> None:
        """For the next `times` DATA commands: send 354, read one line of the body, then
        abort the connection without a reply (the client sees SMTPServerDisconnected)."""
        self._drops.push("drop", times)

    def reset_faults(self) -> None:
        for replies in (self._rcpt_replies, self._data_replies, self._drops):
            replies.clear()


__all__ = ["AuthAttempt", "ReceivedMessage", "SMTPServer"]
