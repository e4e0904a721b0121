"""The outbox: every stored digest reaches every target once, through failures and crashes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sample_digests as samples
from loopback import SlackReceiver, SMTPServer, closed_port
from loopback.slack import Delivery as Post
from processes import storage_setting

from core.config import Config, load_config, parse_config
from core.digest import TokenUsage
from core.store import Delivery, Store
from daemon.cli import main
from daemon.demo import serve_samples
from daemon.runner import Runner

REPO = Path(__file__).resolve().parents[1]
NOW = datetime(2026, 11, 27, 7, 0, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def outbox_config(
    tmp_path: Path,
    deliver: str,
    env: dict[str, str],
    attempts: int = 3,
    store_url: str | None = None,
) -> Config:
    text = f"""
storage: {{{storage_setting(store_url, "state/t.db")}}}
delivery: {{max_attempts: {attempts}, backoff: 1m}}
sources: [{{name: s, url: 'http://127.0.0.1:9/feed.xml'}}]
digests:
  - name: morning-brief
    focus: Engineers.
    deliver:
{deliver}
"""
    return parse_config(text, "test config", env=env, base=tmp_path)


def queue(config: Config, store: Store) -> None:
    labels = [target.label for target in config.digests[0].deliver]
    store.save_digest(samples.digest(), {}, labels, TokenUsage())


def test_a_target_that_fails_twice_then_succeeds_is_delivered_once(
    tmp_path, store_url, slack_receiver
):
    config = outbox_config(
        tmp_path,
        "      - {kind: slack, webhook_url: '${HOOK}'}",
        {"HOOK": slack_receiver.webhook_url},
        store_url=store_url,
    )
    clock = Clock(NOW)
    with Store.open_config(config.storage) as store:
        runner = Runner(config, store, clock)
        queue(config, store)
        slack_receiver.fail(503, times=2)

        first = runner.deliver()
        assert first.deliveries_failed == 1 and "HTTP 503 service_unavailable" in first.errors[0]
        [row] = store.deliveries()
        assert (row.status, row.attempts, row.next_attempt_at) == (
            "pending",
            1,
            NOW + timedelta(minutes=1),
        )
        assert runner.deliver().deliveries_failed == 0  # not due yet: backing off

        clock.now += timedelta(minutes=1)
        assert runner.deliver().deliveries_failed == 1
        [row] = store.deliveries()
        assert row.next_attempt_at == clock.now + timedelta(minutes=2)  # doubled

        clock.now += timedelta(minutes=2)
        assert runner.deliver().deliveries_sent == 1
        clock.now += timedelta(days=1)
        assert runner.deliver().deliveries_sent == 0
        [row] = store.deliveries()
    assert (row.status, row.attempts, row.last_error) == ("sent", 3, None)
    assert [post.status for post in slack_receiver.deliveries] == [503, 503, 200]
    assert len(slack_receiver.messages) == 1


def test_after_the_last_attempt_a_delivery_is_failed_and_the_others_still_go(
    tmp_path, store_url, slack_receiver
):
    config = outbox_config(
        tmp_path,
        "      - {kind: slack, name: broken, webhook_url: '${HOOK}'}\n"
        "      - {kind: file, directory: out}",
        {"HOOK": slack_receiver.webhook_url},
        attempts=2,
        store_url=store_url,
    )
    clock = Clock(NOW)
    with Store.open_config(config.storage) as store:
        runner = Runner(config, store, clock)
        queue(config, store)
        slack_receiver.fail(400, "invalid_blocks", times=5)
        report = runner.deliver()
        assert (report.deliveries_sent, report.deliveries_failed) == (1, 1)
        assert list((tmp_path / "out" / "morning-brief").glob("*.html"))
        clock.now += timedelta(hours=1)
        report = runner.deliver()
        assert "gave up after 2 attempts" in report.errors[0]
        assert {d.target: d.status for d in store.deliveries()} == {
            "broken": "failed",
            "file": "sent",
        }
        [failed] = store.deliveries("failed")
        assert failed.last_error and "invalid_blocks" in failed.last_error
        clock.now += timedelta(days=1)
        assert runner.deliver().deliveries_failed == 0  # given up: not tried again


def write_cli_config(
    folder: Path, feeds: str, deliver: str, attempts: int = 8, store_url: str | None = None
) -> Path:
    sources = "\n".join(
        f"  - {{name: {name}, url: '{feeds}/{name}.xml'}}" for name in ("wire", "ledger", "herald")
    )
    path = folder / "config.yaml"
    path.write_text(
        f"""
storage: {{{storage_setting(store_url)}}}
delivery: {{max_attempts: {attempts}}}
sources:
{sources}
digests:
  - name: brief
    focus: Technology news for engineers.
    deliver:
{deliver}
"""
    )
    return path


def test_run_once_exits_1_when_a_delivery_gives_up_and_status_shows_it(tmp_path, store_url, capsys):
    with serve_samples(datetime.now(UTC)) as feeds:
        config = write_cli_config(
            tmp_path,
            feeds,
            f"      - {{kind: slack, name: team, webhook_url: 'http://127.0.0.1:{closed_port()}/x'}}\n"
            "      - {kind: file, directory: out}",
            attempts=1,
            store_url=store_url,
        )
        assert main(["--config", str(config), "run", "--once"]) == 1
    assert "delivery brief-" in capsys.readouterr().err
    assert list((tmp_path / "out" / "brief").glob("*.md"))
    assert main(["--config", str(config), "status", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    [delivery] = info["deliveries"]
    assert (delivery["target"], delivery["status"]) == ("team", "failed")
    assert "cannot reach Slack" in delivery["last_error"]
    assert main(["--config", str(config), "status"]) == 0
    assert "team: failed after 1 attempts; cannot reach Slack" in capsys.readouterr().out


class CrashingReceiver(SlackReceiver):
    """Kills the sending process when a POST to `path` has arrived, before answering it:
    the message was sent, and the sender dies before it can record that."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.crash_path = path
        self.victim: subprocess.Popen[bytes] | None = None
        self.crashed = threading.Event()

    def _deliver(self, delivery: Post) -> None:
        super()._deliver(delivery)
        if delivery.path == self.crash_path and self.victim and not self.crashed.is_set():
            # Set before the kill: the test thread may see the process dead before this
            # thread gets to run again.
            self.crashed.set()
            self.victim.send_signal(signal.SIGKILL)
            self.victim.wait(timeout=30)


def test_a_crash_between_sent_and_recorded_resends_only_the_message_in_flight(tmp_path, store_url):
    env = {**os.environ, "PYTHONPATH": str(REPO), "STATE_DIRECTORY": str(tmp_path / "state")}
    env.pop("OPENAI_API_KEY", None)
    with (
        serve_samples(datetime.now(UTC)) as feeds,
        CrashingReceiver("/services/T/B/second") as receiver,
    ):
        env["HOOK_FIRST"] = receiver.url_for("/services/T/B/first")
        env["HOOK_SECOND"] = receiver.url_for("/services/T/B/second")
        env["HOOK_THIRD"] = receiver.url_for("/services/T/B/third")
        config = write_cli_config(
            tmp_path,
            feeds,
            "      - {kind: slack, name: first, webhook_url: '${HOOK_FIRST}'}\n"
            "      - {kind: slack, name: second, webhook_url: '${HOOK_SECOND}'}\n"
            "      - {kind: slack, name: third, webhook_url: '${HOOK_THIRD}'}",
            store_url=store_url,
        )
        storage = parse_config(config.read_text(), str(config), env=env, base=tmp_path).storage
        command = [sys.executable, "-m", "daemon", "--config", str(config), "run", "--once"]
        receiver.victim = subprocess.Popen(
            command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        assert receiver.victim.wait(timeout=120) == -signal.SIGKILL
        assert receiver.crashed.is_set()
        with Store.open_config(storage) as store:
            states = {d.target: d.status for d in store.deliveries()}
        assert states == {"first": "sent", "second": "sending", "third": "pending"}

        restart = subprocess.run(
            command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
        )
        posts = [post.path.rsplit("/", 1)[1] for post in receiver.deliveries]
    assert restart.returncode == 0, restart.stderr
    assert "was interrupted" in restart.stderr
    # Recorded as sent: never again. In flight at the crash: once more. Pending: once.
    assert posts == ["first", "second", "second", "third"]
    with Store.open_config(storage) as store:
        assert {d.status for d in store.deliveries()} == {"sent"}
        assert store.counts()["digests"] == 1


def mail_config(folder: Path, port: int, extra: str, store_url: str | None = None) -> Path:
    path = folder / "config.yaml"
    path.write_text(
        f"""
storage: {{{storage_setting(store_url, "state/t.db")}}}
delivery: {{max_attempts: 8, backoff: 1m}}
sources: [{{name: s, url: 'http://127.0.0.1:9/feed.xml'}}]
digests:
  - name: morning-brief
    focus: Engineers.
    deliver:
      - {{kind: email, name: mail, host: 127.0.0.1, port: {port}, to: [ana@example.org],
          sender: digests@example.org, timeout: 5, {extra}}}
"""
    )
    return path


def deliver_once(path: Path) -> list[Delivery]:
    """Queue the sample digest for every target of `path`'s config and attempt it once."""
    config = load_config(path)
    with Store.open_config(config.storage) as store:
        runner = Runner(config, store, Clock(NOW))
        queue(config, store)
        runner.deliver()
        return store.deliveries()


def test_a_refused_login_fails_at_once_and_deliveries_retry_sends_it_when_fixed(
    tmp_path, store_url, tls_cert, capsys
):
    with SMTPServer(starttls=tls_cert, auth=("digests", "right")) as server:
        login = f"security: starttls, ca_file: '{tls_cert.cert_path}', username: digests"
        config = mail_config(tmp_path, server.port, f"{login}, password: wrong", store_url)
        [failed] = deliver_once(config)
        # Failed for good after one attempt, not retried for hours.
        assert (failed.status, failed.attempts) == ("failed", 1)
        assert failed.last_error and "refused the login for digests: 535" in failed.last_error

        assert main(["--config", str(config), "deliveries", "list", "--failed"]) == 0
        listed = capsys.readouterr().out
        assert f"{failed.id}  failed" in listed and "refused the login" in listed
        assert main(["--config", str(config), "deliveries", "retry", str(failed.id)]) == 1
        capsys.readouterr()

        config.write_text(config.read_text().replace("password: wrong", "password: right"))
        assert main(["--config", str(config), "deliveries", "retry", str(failed.id)]) == 0
        assert len(server.messages) == 1
        assert main(["--config", str(config), "deliveries", "list"]) == 0
        assert f"{failed.id}  sent" in capsys.readouterr().out
        # Sent is sent: a retry is refused, and nothing is sent twice.
        assert main(["--config", str(config), "deliveries", "retry", str(failed.id)]) == 2
        assert "is sent, not failed" in capsys.readouterr().err
    assert len(server.messages) == 1


def test_an_untrusted_certificate_fails_the_delivery_at_once(tmp_path, smtp_tls_server):
    [failed] = deliver_once(mail_config(tmp_path, smtp_tls_server.port, "security: starttls"))
    assert (failed.status, failed.attempts) == ("failed", 1)
    assert failed.last_error and "cannot verify the TLS certificate" in failed.last_error
    assert smtp_tls_server.messages == []


def test_a_temporary_smtp_refusal_keeps_backing_off(tmp_path, smtp_server):
    smtp_server.fail_rcpt(times=None, reply="451 4.3.0 try again later")
    [delivery] = deliver_once(mail_config(tmp_path, smtp_server.port, "security: none"))
    assert (delivery.status, delivery.next_attempt_at) == ("pending", NOW + timedelta(minutes=1))


@pytest.mark.parametrize("status", [401, 403, 404, 410])
def test_a_webhook_that_is_gone_or_refuses_us_fails_at_once(tmp_path, slack_receiver, status):
    config = outbox_config(
        tmp_path,
        "      - {kind: slack, name: team, webhook_url: '${HOOK}'}",
        {"HOOK": slack_receiver.webhook_url},
        attempts=8,
    )
    slack_receiver.fail(status, times=5)
    with Store.open_config(config.storage) as store:
        queue(config, store)
        report = Runner(config, store, Clock(NOW)).deliver()
        [failed] = store.deliveries()
    assert (failed.status, failed.attempts) == ("failed", 1)
    assert f"HTTP {status}" in (failed.last_error or "")
    assert "deliveries retry" in report.errors[0]
    assert len(slack_receiver.deliveries) == 1


def test_deliveries_retry_all_failed_sends_each_failed_one_and_nothing_else(
    tmp_path, store_url, slack_receiver, capsys
):
    hook = slack_receiver.webhook_url
    config = tmp_path / "config.yaml"
    config.write_text(
        f"""
storage: {{{storage_setting(store_url, "state/t.db")}}}
delivery: {{max_attempts: 8, backoff: 1m}}
sources: [{{name: s, url: 'http://127.0.0.1:9/feed.xml'}}]
digests:
  - name: morning-brief
    focus: Engineers.
    deliver:
      - {{kind: slack, name: team, webhook_url: '{hook}'}}
      - {{kind: slack, name: ops, webhook_url: '{hook}'}}
      - {{kind: file, directory: out}}
"""
    )
    slack_receiver.fail(404, times=2)
    deliveries = deliver_once(config)
    assert sorted(d.status for d in deliveries) == ["failed", "failed", "sent"]
    assert main(["--config", str(config), "deliveries", "retry", "--all-failed"]) == 0
    assert main(["--config", str(config), "deliveries", "list", "--failed"]) == 0
    assert "no failed deliveries" in capsys.readouterr().out
    # The two that had failed, once each; the file was not written again.
    assert [d.status for d in slack_receiver.deliveries] == [404, 404, 200, 200]
    assert len(list((tmp_path / "out" / "morning-brief").glob("*.md"))) == 1
    assert main(["--config", str(config), "deliveries", "retry", "999"]) == 2
    assert "no delivery with id 999" in capsys.readouterr().err


def test_a_webhook_with_an_untrusted_certificate_fails_at_once(tmp_path, tls_cert):
    receiver = SlackReceiver()
    receiver.tls = tls_cert.server_context()
    with receiver:
        config = outbox_config(
            tmp_path,
            "      - {kind: slack, name: team, webhook_url: '${HOOK}'}",
            {"HOOK": receiver.webhook_url},
            attempts=8,
        )
        with Store.open_config(config.storage) as store:
            queue(config, store)
            Runner(config, store, Clock(NOW)).deliver()
            [failed] = store.deliveries()
        assert receiver.deliveries == []
    assert (failed.status, failed.attempts) == ("failed", 1)
    assert "cannot verify the TLS certificate of the webhook" in (failed.last_error or "")
    assert SlackReceiver.WEBHOOK_PATH not in (failed.last_error or "")  # the URL is a secret
