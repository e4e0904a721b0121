"""Job claims under leases (core/store/jobs.py), on both backends, with real processes: two
workers never claim the same feed's fetch within its interval, and a SIGKILLed worker's
claim returns to the pool when its lease runs out."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta

from conftest import StoreOpener
from test_store_backends import child_store

from core.clock import to_text

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
LEASE = timedelta(minutes=1)
INTERVAL = timedelta(minutes=30)
FEEDS = 200


def test_a_job_is_enqueued_once_claimed_once_and_due_again_after_its_interval(
    open_store: StoreOpener,
) -> None:
    with open_store() as store:
        store.enqueue_job("fetch", "feed-a", NOW)
        store.enqueue_job("fetch", "feed-a", NOW - timedelta(hours=1))  # a second scheduler
        assert store.claim_job("w1", ("fetch",), NOW - timedelta(minutes=1), LEASE) is None
        job = store.claim_job("w1", ("fetch",), NOW, LEASE)
        assert job is not None and (job.key, job.due_at, job.attempts) == ("feed-a", NOW, 1)
        assert store.claim_job("w2", ("fetch",), NOW, LEASE) is None
        assert store.claim_job("w2", ("digest",), NOW + INTERVAL, LEASE) is None
        assert store.finish_job(job, NOW + INTERVAL)
        assert (
            store.claim_job("w2", ("fetch",), NOW + INTERVAL - timedelta(seconds=1), LEASE) is None
        )
        again = store.claim_job("w2", ("fetch",), NOW + INTERVAL, LEASE)
        assert again is not None and again.key == "feed-a"
        assert store.finish_job(again, None)
        assert store.claim_job("w2", ("fetch",), NOW + 10 * INTERVAL, LEASE) is None


def test_a_worker_whose_lease_ran_out_cannot_finish_the_next_workers_claim(
    open_store: StoreOpener,
) -> None:
    with open_store() as store:
        store.enqueue_job("fetch", "feed-a", NOW)
        slow = store.claim_job("w1", ("fetch",), NOW, LEASE)
        fast = store.claim_job("w2", ("fetch",), NOW + LEASE, LEASE)
        assert slow is not None and fast is not None and fast.attempts == 2
        assert not store.finish_job(slow, NOW + INTERVAL)  # too late: w2 holds it now
        assert store.claim_job("w3", ("fetch",), NOW + LEASE, LEASE) is None
        assert store.finish_job(fast, NOW + INTERVAL)


WORKER = f"""
from datetime import datetime, timedelta
now = datetime.fromisoformat({to_text(NOW)!r})
claimed = []
print("ready", flush=True)
sys.stdin.readline()  # both workers start claiming at once
for _ in range({FEEDS + 1}):
    job = store.claim_job(sys.argv[1], ("fetch",), now, timedelta(minutes=1))
    if job is None:
        break
    claimed.append(job.key)
    store.finish_job(job, now + timedelta(minutes=30))
print("\\n".join(claimed))
"""


def test_two_worker_processes_never_claim_the_same_fetch_within_its_interval(
    open_store: StoreOpener,
) -> None:
    with open_store() as store:
        for n in range(FEEDS):
            store.enqueue_job("fetch", f"feed-{n}", NOW - timedelta(seconds=n))
        script = child_store(store) + WORKER
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", script, name],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for name in ("w1", "w2")
    ]
    for worker in workers:
        assert worker.stdout is not None
        assert worker.stdout.readline() == "ready\n"
    for worker in workers:
        assert worker.stdin is not None
        worker.stdin.write("go\n")
        worker.stdin.close()
    # Their stderr goes to the test's captured output; a worker that fails exits non-zero.
    claims = [worker.stdout.read().split() for worker in workers if worker.stdout]
    assert [worker.wait(timeout=120) for worker in workers] == [0, 0]
    every = claims[0] + claims[1]
    assert sorted(every) == sorted(f"feed-{n}" for n in range(FEEDS))  # each exactly once
    print(f"claims per worker: {[len(c) for c in claims]}")


HOLDER = f"""
from datetime import datetime, timedelta
import time
now = datetime.fromisoformat({to_text(NOW)!r})
job = store.claim_job("doomed", ("fetch",), now, timedelta(minutes=1))
print(job.key, flush=True)
time.sleep(120)  # killed long before this ends
"""


def test_a_sigkilled_workers_claim_returns_to_the_pool_when_its_lease_runs_out(
    open_store: StoreOpener,
) -> None:
    with open_store() as store:
        store.enqueue_job("fetch", "feed-a", NOW)
        doomed = subprocess.Popen(
            [sys.executable, "-c", child_store(store) + HOLDER],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert doomed.stdout is not None
            assert doomed.stdout.readline().strip() == "feed-a"
        finally:
            os.kill(doomed.pid, signal.SIGKILL)
            doomed.wait(timeout=60)
        assert store.claim_job("w2", ("fetch",), NOW + LEASE / 2, LEASE) is None
        back = store.claim_job("w2", ("fetch",), NOW + LEASE, LEASE)
        assert back is not None and (back.key, back.attempts) == ("feed-a", 2)


def test_a_heartbeat_keeps_a_live_workers_claims_and_host_slots_past_their_lease(
    open_store: StoreOpener,
) -> None:
    with open_store() as store:
        store.enqueue_job("digest", "daily", NOW)
        job = store.claim_job("w1", ("digest",), NOW, LEASE)
        assert job is not None
        assert store.claim_host_slots("news.example", 2, 3, "w1", NOW, LEASE) == 2
        assert store.claim_host_slots("news.example", 2, 1, "w2", NOW, LEASE) == 0
        store.extend_leases("w1", NOW + 3 * LEASE)  # w1 is alive: its heartbeat
        assert store.claim_job("w2", ("digest",), NOW + 2 * LEASE, LEASE) is None
        assert store.claim_host_slots("news.example", 2, 1, "w2", NOW + 2 * LEASE, LEASE) == 0
        # w1 dies: its leases run out a lease after its last heartbeat.
        assert store.claim_host_slots("news.example", 2, 2, "w2", NOW + 3 * LEASE, LEASE) == 2
        back = store.claim_job("w2", ("digest",), NOW + 3 * LEASE, LEASE)
        assert back is not None and back.attempts == 2
        store.release_host_slots("w2")
        assert store.claim_host_slots("news.example", 2, 1, "w3", NOW + 3 * LEASE, LEASE) == 1
