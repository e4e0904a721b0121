"""The file target and its archive, and rendering from the command line without sending."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import feedparser
import pytest
import sample_digests as samples
from loopback.slack import validate_payload

from core.config import FileTarget
from core.store import Store
from daemon.cli import main
from daemon.demo import serve_samples
from digests.deliver import DeliveryError, send


def test_files_and_an_archive_with_an_atom_feed_are_written(tmp_path):
    target = FileTarget(kind="file", directory=tmp_path)
    first = samples.digest()
    second = samples.digest(created=samples.CREATED + timedelta(days=1))
    send(first, target)
    send(second, target)
    send(first, target)  # a re-send rewrites, never duplicates
    folder = tmp_path / "morning-brief"
    names = sorted(path.name for path in folder.iterdir())
    assert names == sorted(
        [
            f"{stem}.{ext}"
            for stem in ("20261127T070000Z", "20261128T070000Z")
            for ext in ("json", "md", "html")
        ]
        + ["index.html", "feed.atom"]
    )
    assert json.loads((folder / "20261128T070000Z.json").read_text())["id"] == second.id
    index = (folder / "index.html").read_text()
    assert index.index('href="20261128T070000Z.html"') < index.index('href="20261127T070000Z.html"')
    assert index.count('class="digest"') == 2
    feed = feedparser.parse((folder / "feed.atom").read_bytes())
    assert feed.bozo is False
    assert [entry.link for entry in feed.entries] == [
        "20261128T070000Z.html",
        "20261127T070000Z.html",
    ]
    page = (folder / "20261127T070000Z.html").read_text()
    assert 'href="index.html"' in page and 'href="feed.atom"' in page
    assert all(oct(path.stat().st_mode)[-3:] == "644" for path in folder.iterdir())


def test_a_file_target_that_cannot_write_says_where(tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    with pytest.raises(DeliveryError, match=f"cannot write to {blocker}/morning-brief"):
        send(samples.digest(), FileTarget(kind="file", directory=blocker))


def write_config(folder: Path, feeds: str) -> Path:
    path = folder / "config.yaml"
    path.write_text(
        f"""
storage: {{path: state/t.db}}
sources:
  - {{name: wire, url: '{feeds}/wire.xml'}}
  - {{name: ledger, url: '{feeds}/ledger.xml'}}
digests:
  - name: brief
    focus: Technology news for engineers.
    deliver:
      - {{kind: file, directory: out}}
"""
    )
    return path


def test_dry_run_renders_every_format_and_stores_and_sends_nothing(tmp_path, capsys):
    with serve_samples(datetime.now(UTC)) as feeds:
        config = write_config(tmp_path, feeds)
        assert main(["--config", str(config), "collect"]) == 0
    capsys.readouterr()
    outputs = {}
    for format in ("md", "text", "html", "json", "slack"):
        assert main(["--config", str(config), "digest", "--dry-run", "--format", format]) == 0
        outputs[format] = capsys.readouterr().out
    assert "CloudNimbus" in outputs["text"] and outputs["html"].startswith("<!doctype html>")
    assert json.loads(outputs["json"])["profile"] == "brief"
    for payload in json.loads(outputs["slack"]):
        validate_payload(payload)
    assert not (tmp_path / "out").exists()
    with Store.open(tmp_path / "state" / "t.db") as store:
        assert store.counts()["digests"] == 0 and store.counts()["deliveries"] == 0

    assert main(["--config", str(config), "digest"]) == 0
    capsys.readouterr()
    assert main(["--config", str(config), "digests", "list"]) == 0
    digest_id = capsys.readouterr().out.split()[0]
    assert main(["--config", str(config), "digests", "show", digest_id, "--format", "text"]) == 0
    shown = capsys.readouterr().out
    [written] = (tmp_path / "out" / "brief").glob("*.md")
    assert "CloudNimbus" in shown and "CloudNimbus" in written.read_text()
