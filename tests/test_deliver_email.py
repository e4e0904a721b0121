"""The email target against a real SMTP server (aiosmtpd) on 127.0.0.1."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
import sample_digests as samples
from loopback import SelfSignedCert, SMTPServer, closed_port
from loopback.net import SilentServer

from core.config import EmailTarget
from digests.deliver import DeliveryError, send


def target(server_port: int, **overrides: object) -> EmailTarget:
    values: dict[str, object] = {
        "kind": "email",
        "host": "127.0.0.1",
        "port": server_port,
        "security": "none",
        "sender": "Trendfinder <digests@example.org>",
        "to": ["ana@example.org", "bo@example.org"],
        "timeout": 5,
    }
    return EmailTarget.model_validate({**values, **overrides})


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, dict(attrs)))


def test_a_digest_arrives_as_multipart_alternative_with_the_headers(smtp_server: SMTPServer):
    digest = samples.digest()
    where = send(digest, target(smtp_server.port))
    [received] = smtp_server.messages
    message = received.message
    assert received.rcpt_tos == ["ana@example.org", "bo@example.org"]
    assert received.mail_from == "digests@example.org"
    assert message.get_content_type() == "multipart/alternative"
    parts = [part.get_content_type() for part in message.iter_parts()]
    assert parts == ["text/plain", "text/html"]
    assert message["Subject"] == (
        "morning-brief digest, 2026-11-27: "
        "Story 1: regulators and vendors respond to the cloud outage"
    )
    assert message["Date"] == "Fri, 27 Nov 2026 07:00:00 +0000"
    assert message["Message-ID"].startswith("<morning-brief-20261127T070000Z.")
    assert message["Message-ID"].endswith("@example.org>")
    assert message["List-Id"] == "morning-brief digests <morning-brief.digests.example.org>"
    assert message["To"] == "ana@example.org, bo@example.org"
    assert message["Message-ID"] in where
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    for trend in digest.trends:
        assert trend.title in text and trend.title in html
        assert trend.items[0].url in text and f'href="{trend.items[0].url}"' in html


def test_a_resend_keeps_the_message_id_and_another_digest_gets_another(smtp_server: SMTPServer):
    from datetime import timedelta

    first = samples.digest()
    later = samples.digest(created=samples.CREATED + timedelta(days=1))
    for digest in (first, first, later):
        send(digest, target(smtp_server.port))
    ids = [m.message["Message-ID"] for m in smtp_server.messages]
    assert ids[0] == ids[1] != ids[2]


def test_html_injection_in_a_feed_title_arrives_escaped_and_inert(smtp_server: SMTPServer):
    send(samples.hostile(), target(smtp_server.port))
    [received] = smtp_server.messages
    html = received.message.get_body(("html",)).get_content()
    parser = Tags()
    parser.feed(html)
    assert not [tag for tag, _ in parser.found if tag in {"script", "img", "svg", "iframe"}]
    assert not [name for _, attrs in parser.found for name in attrs if name.startswith("on")]
    hrefs = [attrs.get("href") or "" for tag, attrs in parser.found if tag == "a"]
    assert hrefs and all(href.startswith("https://") for href in hrefs)
    assert "&lt;script&gt;" in html and "Click me" in html


def test_starttls_with_a_self_signed_certificate_and_login(tmp_path, tls_cert: SelfSignedCert):
    with SMTPServer(starttls=tls_cert, require_starttls=True, auth=("digests", "s3cret")) as server:
        send(
            samples.digest(),
            target(
                server.port,
                security="starttls",
                ca_file=tls_cert.cert_path,
                username="digests",
                password="s3cret",
            ),
        )
        [received] = server.messages
    assert received.tls and received.auth_user == "digests"


def test_implicit_tls_on_an_smtps_port(smtps_server: SMTPServer, tls_cert: SelfSignedCert):
    send(samples.digest(), target(smtps_server.port, security="tls", ca_file=tls_cert.cert_path))
    [received] = smtps_server.messages
    assert received.tls


def test_an_untrusted_certificate_is_refused(smtp_tls_server: SMTPServer):
    with pytest.raises(DeliveryError, match="cannot verify the TLS certificate"):
        send(samples.digest(), target(smtp_tls_server.port, security="starttls"))
    assert smtp_tls_server.messages == []


def test_starttls_asked_but_not_offered_fails_hard_without_sending(smtp_server: SMTPServer):
    with pytest.raises(DeliveryError, match="does not offer STARTTLS"):
        send(samples.digest(), target(smtp_server.port, security="starttls"))
    assert smtp_server.messages == []


def test_a_refused_login_names_the_user_and_the_reply(tls_cert: SelfSignedCert):
    with SMTPServer(starttls=tls_cert, refuse_auth=True) as server:
        settings = target(
            server.port,
            security="starttls",
            ca_file=tls_cert.cert_path,
            username="digests",
            password="wrong",
        )
        with pytest.raises(DeliveryError, match=r"refused the login for digests: 535"):
            send(samples.digest(), settings)
        assert server.messages == []


def test_a_server_that_is_down_or_silent_is_a_clear_failure():
    with pytest.raises(DeliveryError, match=r"cannot reach 127\.0\.0\.1:\d+: Connection refused"):
        send(samples.digest(), target(closed_port()))
    with SilentServer() as silent, pytest.raises(DeliveryError, match="did not answer within 1 s"):
        send(samples.digest(), target(silent.port, timeout=1))


def test_a_rejected_recipient_list_is_a_failure_naming_the_addresses(smtp_server: SMTPServer):
    smtp_server.fail_rcpt(times=None)
    with pytest.raises(DeliveryError, match=r"refused every recipient: ana@example\.org: 550"):
        send(samples.digest(), target(smtp_server.port))
