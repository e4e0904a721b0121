"""`trendfinder status`: what ran, what failed, what waits, what it cost."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from core.clock import from_text, to_text
from core.config import Config, XSource
from core.store import Store
from daemon.cron import next_fire_time

RECENT_ALERTS = 10


def gather(config: Config, store: Store, now: datetime) -> dict[str, Any]:
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    month = today.replace(day=1)
    configured = {source.name for source in config.sources if source.enabled}
    failing = [
        {
            "name": state.name,
            "error": state.last_error,
            "failures": state.failures,
            "last_success": to_text(state.last_success_at) if state.last_success_at else None,
            "last_attempt": to_text(state.last_attempt_at) if state.last_attempt_at else None,
            "next_attempt": to_text(state.next_fetch_at) if state.next_fetch_at else None,
            "disabled": state.disabled_reason,
        }
        for state in store.source_states()
        if state.name in configured and (state.last_error or state.disabled_reason)
    ]
    runs = [_run(row) for row in store.last_runs()]
    deliveries = [
        {
            "digest": delivery.digest_id,
            "target": delivery.target,
            "status": delivery.status,
            "attempts": delivery.attempts,
            "last_error": delivery.last_error,
            "next_attempt": (
                to_text(delivery.next_attempt_at) if delivery.status == "pending" else None
            ),
        }
        for status in ("sending", "pending", "failed")
        for delivery in store.deliveries(status)
    ]
    waiting = {
        profile.name: store.count_pending(
            profile.name, [s.name for s in config.sources_for(profile)], now - profile.lookback
        )
        for profile in config.digests
    }
    profiles = []
    for profile in config.digests:
        last = store.last_digest_summary(profile.name)
        profiles.append(
            {
                "name": profile.name,
                "items_waiting": waiting[profile.name],
                "last_digest": last.id if last else None,
                "last_digest_at": to_text(last.created_at) if last else None,
                "next_digest_at": to_text(next_fire_time(profile, now)),
            }
        )
    alerts = [
        {
            "profile": alert.profile,
            "rule": alert.rule,
            "subject": alert.subject,
            "size": alert.size,
            "fired_at": to_text(alert.fired_at),
            "digest": alert.digest_id,
        }
        for alert in store.recent_alerts(RECENT_ALERTS)
    ]
    workers = [
        {
            "name": beat.name,
            "role": beat.role,
            "started_at": to_text(beat.started_at),
            "heartbeat_at": to_text(beat.heartbeat_at),
            "heartbeat_age_s": round((now - beat.heartbeat_at).total_seconds(), 1),
        }
        for beat in store.workers()
    ]
    queues = [
        {
            "kind": queue.kind,
            "total": queue.total,
            "due": queue.due,
            "claimed": queue.claimed,
            "lag_s": round((now - queue.oldest_due_at).total_seconds(), 1)
            if queue.oldest_due_at
            else 0.0,
        }
        for queue in store.job_queues(now)
    ]
    return {
        "now": to_text(now),
        "workers": workers,
        "queues": queues,
        "alerts": alerts,
        "store": {"path": store.sql.location, "bytes": store.size_bytes(), **store.counts()},
        "runs": runs,
        "sources": {"configured": len(configured), "failing": len(failing)},
        "x_cadence": {
            source.name: source.cadence
            for source in config.sources
            if isinstance(source, XSource) and source.enabled
        },
        "failing_sources": failing,
        "deliveries": deliveries,
        "items_waiting": waiting,
        "profiles": profiles,
        "spend": {
            "today": round(store.spend_since(today), 4),
            "month": round(store.spend_since(month), 4),
            "daily_cap": config.llm.daily_spend_cap,
        },
    }


def _run(row: dict[str, Any]) -> dict[str, Any]:
    finished = row["finished_at"]
    duration = (
        round((from_text(finished) - from_text(row["started_at"])).total_seconds(), 3)
        if finished
        else None
    )
    return {
        "kind": row["kind"],
        "started_at": row["started_at"],
        "finished_at": finished,
        "duration_s": duration,
        "status": row["status"],
        "summary": json.loads(row["summary"]),
        "errors": json.loads(row["errors"]),
        "tokens": {
            "input": row["input_tokens"],
            "cached": row["cached_tokens"],
            "reasoning": row["reasoning_tokens"],
            "output": row["output_tokens"],
        },
        "cost": row["cost"],
    }


def render_text(info: dict[str, Any]) -> str:
    store = info["store"]
    lines = [
        f"store: {store['path']} ({store['bytes'] / 1e6:.1f} MB): {store['items']} items, "
        f"{store['stories']} stories, {store['digests']} digests",
        "",
        "last run of each job:",
    ]
    if not info["runs"]:
        lines.append("  (none yet)")
    for run in info["runs"]:
        took = f" in {run['duration_s']:.1f} s" if run["duration_s"] is not None else ""
        lines.append(f"  {run['kind']:<24} {run['status']:<9} {run['started_at']}{took}")
        lines += [f"      {error}" for error in run["errors"][:5]]
    sources = info["sources"]
    lines += ["", f"sources: {sources['configured']} configured, {sources['failing']} failing"]
    for source in info["failing_sources"]:
        if source["disabled"]:
            lines.append(
                f"  {source['name']}: disabled: {source['disabled']} "
                "(not fetched again until its url changes in the config)"
            )
        else:
            lines.append(
                f"  {source['name']}: {source['error']} "
                f"({source['failures']} failures; next try {source['next_attempt']})"
            )
    lines += [f"  {name} (x): {cadence}" for name, cadence in info["x_cadence"].items()]
    lines += ["", "deliveries waiting or failed:" if info["deliveries"] else "deliveries: all sent"]
    for delivery in info["deliveries"]:
        retry = f"; next try {delivery['next_attempt']}" if delivery["next_attempt"] else ""
        lines.append(
            f"  {delivery['digest']} -> {delivery['target']}: {delivery['status']} after "
            f"{delivery['attempts']} attempts{retry}; {delivery['last_error'] or ''}"
        )
    lines += ["", "digest profiles:"]
    for profile in info["profiles"]:
        last = profile["last_digest_at"] or "never"
        lines.append(
            f"  {profile['name']}: {profile['items_waiting']} items waiting; last digest {last}; "
            f"next {profile['next_digest_at']}"
        )
    if info["workers"] or info["queues"]:
        lines += ["", "workers (trendfinder worker, scheduler):"]
        lines += [
            f"  {worker['role']:<9} {worker['name']}: "
            f"last heartbeat {worker['heartbeat_age_s']:.0f} s ago"
            for worker in info["workers"]
        ] or ["  (none running)"]
        lines += ["", "job queues (due now / claimed / all; lag: the oldest due job's age):"]
        lines += [
            f"  {queue['kind']:<8} {queue['due']} / {queue['claimed']} / {queue['total']}; "
            f"lag {queue['lag_s']:.1f} s"
            for queue in info["queues"]
        ]
    lines += ["", "recent alerts:" if info["alerts"] else "alerts: none yet"]
    for alert in info["alerts"]:
        lines.append(
            f"  {alert['fired_at']} {alert['profile']}: {alert['rule']} {alert['subject']} "
            f"(size {alert['size']}) -> {alert['digest']}"
        )
    spend = info["spend"]
    cap = f" (daily cap ${spend['daily_cap']:.2f})" if spend["daily_cap"] is not None else ""
    lines += [
        "",
        f"model spend: today ${spend['today']:.4f}, this month ${spend['month']:.4f}{cap}",
    ]
    return "\n".join(lines)
