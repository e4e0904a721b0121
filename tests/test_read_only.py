"""Commands that only look (status, digests, deliveries list, check) change nothing."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest
import sample_digests as samples

from core.digest import TokenUsage
from core.store import MIGRATIONS, SCHEMA_VERSION, Store
from daemon.cli import main

DIGEST_ID = samples.digest().id
LOOKING = [
    ["status"],
    ["status", "--json"],
    ["digests", "list"],
    ["digests", "show", DIGEST_ID],
    ["deliveries", "list"],
    ["deliveries", "list", "--failed"],
    ["check"],
]


def write_config(folder: Path) -> Path:
    # Sources the store has never seen: a command that synced them would write.
    path = folder / "config.yaml"
    path.write_text(
        """
storage: {path: state/t.db}
sources:
  - {name: wire, url: 'http://127.0.0.1:9/wire.xml'}
  - {name: ledger, url: 'http://127.0.0.1:9/ledger.xml'}
digests:
  - name: morning-brief
    focus: Engineers.
    deliver:
      - {kind: file, directory: out}
"""
    )
    return path


def snapshot(path: Path) -> tuple[str, int, int, bytes]:
    """The store as a later reader finds it: bytes, mtime, schema version, and the WAL's
    content (a write in WAL mode lands there first)."""
    wal = Path(f"{path}-wal")
    with sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True) as conn:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
    conn.close()
    return (
        hashlib.sha256(path.read_bytes()).hexdigest(),
        path.stat().st_mtime_ns,
        version,
        wal.read_bytes() if wal.exists() else b"",
    )


@pytest.mark.parametrize("command", LOOKING, ids=" ".join)
def test_a_looking_command_leaves_the_store_exactly_as_it_was(tmp_path, command, capsys):
    config = write_config(tmp_path)
    database = tmp_path / "state" / "t.db"
    with Store.open(database) as store:
        store.sync_sources([("old", "feed", "http://127.0.0.1:9/old.xml")])
        store.save_digest(samples.digest(), {}, ["file"], TokenUsage())
    before = snapshot(database)
    assert main(["--config", str(config), *command]) == 0
    assert snapshot(database) == before
    if command == ["check"]:
        assert f"schema version {SCHEMA_VERSION}" in capsys.readouterr().out


@pytest.mark.parametrize("command", LOOKING, ids=" ".join)
def test_a_store_that_needs_migrating_is_reported_and_left_at_its_version(
    tmp_path, command, capsys
):
    config = write_config(tmp_path)
    database = tmp_path / "state" / "t.db"
    database.parent.mkdir()
    old = SCHEMA_VERSION - 1
    with sqlite3.connect(database) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        for script in MIGRATIONS[:old]:
            conn.executescript(script)
        conn.execute(f"PRAGMA user_version = {old}")
    conn.close()
    before = snapshot(database)
    code = main(["--config", str(config), *command])
    assert snapshot(database) == before
    said = capsys.readouterr()
    message = (
        f"store at {database} is at schema version {old}; `trendfinder run` will migrate it "
        f"to {SCHEMA_VERSION}"
    )
    if command == ["check"]:
        assert code == 0 and message in said.out
    else:
        assert code != 0 and message in said.err


@pytest.mark.parametrize("command", LOOKING, ids=" ".join)
def test_a_looking_command_creates_no_store(tmp_path, command, capsys):
    config = write_config(tmp_path)
    code = main(["--config", str(config), *command])
    assert not (tmp_path / "state").exists()
    said = capsys.readouterr()
    if command == ["check"]:
        assert code == 0 and "not created yet; `trendfinder run` creates it" in said.out
    else:
        assert code != 0 and f"no store at {tmp_path / 'state' / 't.db'} yet" in said.err
