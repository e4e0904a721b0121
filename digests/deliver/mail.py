"""The email target: one multipart/alternative message (plain text + HTML) over SMTP.

TLS is implicit (`security: tls`, port 465) or STARTTLS (`starttls`, port 587, refusing to
continue in clear when the server does not offer it), and certificates are verified.
The Message-ID is derived from the digest id, so a re-send is recognisable as the same mail.
"""

from __future__ import annotations

import hashlib
import logging
import re
import smtplib
import socket
import ssl
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr

from core.config import EmailTarget
from core.digest import Digest
from core.votes import VoteLinks
from digests import render
from digests.deliver import DeliveryError

log = logging.getLogger("trendfinder")
_SUBJECT_CHARS = 140
_NOT_IN_ID = re.compile(r"[^A-Za-z0-9-]+")


def _one_line(text: str) -> str:
    return " ".join(text.split())


def subject(digest: Digest) -> str:
    top = _one_line(digest.trends[0].title) if digest.trends else "nothing notable"
    text = f"{digest.profile} digest, {digest.created_at:%Y-%m-%d}: {top}"
    return text if len(text) <= _SUBJECT_CHARS else text[: _SUBJECT_CHARS - 1].rstrip() + "…"


def _domain(target: EmailTarget) -> str:
    address = parseaddr(target.sender)[1]
    domain = address.rpartition("@")[2].strip().lower()
    return domain if re.fullmatch(r"[a-z0-9.-]+", domain) else "trendfinder.invalid"


def message_id(digest: Digest, target: EmailTarget) -> str:
    """The same for every send of this digest to this target, different across targets."""
    target_hash = hashlib.sha256(target.label.encode()).hexdigest()[:8]
    local = _NOT_IN_ID.sub("-", digest.id).strip("-")
    return f"<{local}.{target_hash}@{_domain(target)}>"


def list_id(digest: Digest, target: EmailTarget) -> str:
    label = _NOT_IN_ID.sub("-", digest.profile).strip("-").lower() or "digest"
    return f"{digest.profile} digests <{label}.digests.{_domain(target)}>"


def build_message(
    digest: Digest, target: EmailTarget, votes: VoteLinks | None = None
) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = subject(digest)
    message["From"] = target.sender
    message["To"] = ", ".join(target.to)
    message["Date"] = format_datetime(digest.created_at)
    message["Message-ID"] = message_id(digest, target)
    message["List-Id"] = list_id(digest, target)
    # Tells mail servers and vacation responders this is automated (RFC 3834).
    message["Auto-Submitted"] = "auto-generated"
    message["X-Trendfinder-Digest"] = digest.id
    message.set_content(render.text(digest, votes=votes))
    message.add_alternative(render.html(digest, votes=votes), subtype="html")
    return message


def _tls_context(target: EmailTarget) -> ssl.SSLContext:
    cafile = str(target.ca_file) if target.ca_file else None
    return ssl.create_default_context(cafile=cafile)


def _connect(target: EmailTarget) -> smtplib.SMTP:
    # gethostname, not smtplib's default getfqdn, which can stall on a reverse DNS lookup.
    name = socket.gethostname()
    if target.security == "tls":
        return smtplib.SMTP_SSL(
            target.host,
            target.port,
            local_hostname=name,
            timeout=target.timeout,
            context=_tls_context(target),
        )
    smtp = smtplib.SMTP(target.host, target.port, local_hostname=name, timeout=target.timeout)
    try:
        if target.security == "starttls":
            smtp.ehlo()
            if not smtp.has_extn("starttls"):
                raise DeliveryError(
                    f"{target.host}:{target.port} does not offer STARTTLS, and security is "
                    "starttls: not sending in clear (use port 465 with security: tls, or "
                    "security: none on a trusted network)",
                    permanent=True,
                )
            smtp.starttls(context=_tls_context(target))
            smtp.ehlo()
    except BaseException:
        smtp.close()
        raise
    return smtp


def _permanent(code: int) -> bool:
    """SMTP's 5yz replies are permanent failures (RFC 5321 4.2.1); 4yz ones are worth a retry."""
    return code >= 500


def _reply(code: int, text: bytes | str) -> str:
    words = text.decode(errors="replace") if isinstance(text, bytes) else text
    return f"{code} {_one_line(words)}"


def send_email(digest: Digest, target: EmailTarget, votes: VoteLinks | None = None) -> str:
    message = build_message(digest, target, votes)
    server = f"{target.host}:{target.port}"
    envelope_from = parseaddr(target.sender)[1] or target.sender
    try:
        with _connect(target) as smtp:
            if target.username:
                smtp.login(target.username, target.password or "")
            refused = smtp.send_message(message, envelope_from, list(target.to))
    except DeliveryError:
        raise
    except smtplib.SMTPAuthenticationError as error:
        raise DeliveryError(
            f"{server} refused the login for {target.username}: "
            f"{_reply(error.smtp_code, error.smtp_error)}",
            permanent=_permanent(error.smtp_code),
        ) from error
    except smtplib.SMTPNotSupportedError as error:
        raise DeliveryError(
            f"{server}: {error} (check security and username)", permanent=True
        ) from error
    except smtplib.SMTPRecipientsRefused as error:
        refusals = "; ".join(
            f"{address}: {_reply(code, text)}" for address, (code, text) in error.recipients.items()
        )
        raise DeliveryError(
            f"{server} refused every recipient: {refusals}",
            permanent=all(_permanent(code) for code, _ in error.recipients.values()),
        ) from error
    except smtplib.SMTPResponseException as error:
        raise DeliveryError(
            f"{server} answered {_reply(error.smtp_code, error.smtp_error)}",
            permanent=_permanent(error.smtp_code),
        ) from error
    except smtplib.SMTPServerDisconnected as error:
        # smtplib reports a read timeout as a disconnection.
        if "timed out" in str(error):
            raise DeliveryError(f"{server} did not answer within {target.timeout:g} s") from error
        raise DeliveryError(f"{server} closed the connection: {error}") from error
    except ssl.SSLCertVerificationError as error:
        raise DeliveryError(
            f"cannot verify the TLS certificate of {server}: {error.verify_message} "
            "(set ca_file to trust a private certificate authority)",
            permanent=True,
        ) from error
    except ssl.SSLError as error:
        raise DeliveryError(f"TLS with {server} failed: {error.reason or error}") from error
    except TimeoutError as error:
        raise DeliveryError(f"{server} did not answer within {target.timeout:g} s") from error
    except smtplib.SMTPException as error:
        raise DeliveryError(f"{server}: {error}") from error
    except OSError as error:
        raise DeliveryError(f"cannot reach {server}: {error.strerror or error}") from error
    recipients = ", ".join(address for address in target.to if address not in refused)
    if refused:
        log.warning(
            "email %s: %s refused some recipients: %s",
            digest.id,
            server,
            "; ".join(f"{a}: {_reply(c, t)}" for a, (c, t) in refused.items()),
        )
    return f"{recipients} via {server} as {message['Message-ID']}"
