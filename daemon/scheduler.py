"""Long-running mode: APScheduler 3 runs the cycle on the config's schedule."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

from apscheduler.schedulers.blocking import BlockingScheduler

from daemon.config import load_config
from daemon.runner import Runner
from daemon.store import Store

log = logging.getLogger("trendfinder")


def run_forever(path: Path) -> int:
    config = load_config(path)
    store = Store.open(config.storage.database)
    runner = Runner(config, store)
    tick = min([s.interval for s in config.sources] + [timedelta(minutes=1)])
    scheduler = BlockingScheduler(timezone="UTC")
    scheduler.add_job(
        runner.run_once,
        "interval",
        seconds=tick.total_seconds(),
        max_instances=1,
        coalesce=True,
        next_run_time=None,
    )
    log.info("trendfinder running; checking for due work every %s", tick)
    try:
        runner.run_once()
        scheduler.start()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        store.close()
    return 0
