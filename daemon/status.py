"""`trendfinder status`: what ran, what failed, what waits, what it cost."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from daemon.clock import to_text
from daemon.config import Config
from daemon.store import Store


def gather(config: Config, store: Store, now: datetime) -> dict[str, Any]:
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    month = today.replace(day=1)
    # A source taken out of the config (or disabled there) keeps its row, but is not failing.
    configured = {source.name for source in config.sources if source.enabled}
    failing = [
        {
            "name": state.name,
            "error": state.last_error,
            "failures": state.failures,
            "next_attempt": to_text(state.next_fetch_at) if state.next_fetch_at else None,
            "disabled": state.disabled_reason,
        }
        for state in store.source_states()
        if state.name in configured and (state.last_error or state.disabled_reason)
    ]
    runs = [
        {
            "kind": row["kind"],
            "started_at": row["started_at"],
            "finished_at": row["finished_at"],
            "status": row["status"],
            "summary": json.loads(row["summary"]),
            "errors": json.loads(row["errors"]),
        }
        for row in store.last_runs()
    ]
    deliveries = [
        {
            "digest": delivery.digest_id,
            "target": delivery.target,
            "status": delivery.status,
            "attempts": delivery.attempts,
            "last_error": delivery.last_error,
            "next_attempt": to_text(delivery.next_attempt_at),
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
    return {
        "now": to_text(now),
        "store": {"path": str(store.path), "bytes": store.size_bytes(), **store.counts()},
        "runs": runs,
        "failing_sources": failing,
        "deliveries": deliveries,
        "items_waiting": waiting,
        "spend": {
            "today": round(store.spend_since(today), 4),
            "month": round(store.spend_since(month), 4),
            "daily_cap": config.llm.daily_spend_cap,
        },
        "sources": len(config.sources),
    }


def render_text(info: dict[str, Any]) -> str:
    store = info["store"]
    lines = [
        f"store: {store['path']} ({store['bytes'] / 1e6:.1f} MB): {store['items']} items, "
        f"{store['stories']} stories, {store['digests']} digests",
        "",
        "last runs:",
    ]
    for run in info["runs"] or [
        {"kind": "(none yet)", "status": "", "started_at": "", "errors": []}
    ]:
        lines.append(f"  {run['kind']:<24} {run['status']:<8} {run['started_at']}")
        lines += [f"      {error}" for error in run["errors"][:5]]
    lines += ["", f"failing sources: {len(info['failing_sources'])}"]
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
    lines += ["", "deliveries waiting or failed:" if info["deliveries"] else "deliveries: all sent"]
    for delivery in info["deliveries"]:
        lines.append(
            f"  {delivery['digest']} -> {delivery['target']}: {delivery['status']} after "
            f"{delivery['attempts']} attempts; {delivery['last_error'] or ''}"
        )
    lines += ["", "items waiting per digest profile:"]
    lines += [f"  {name}: {count}" for name, count in info["items_waiting"].items()]
    spend = info["spend"]
    cap = f" (daily cap ${spend['daily_cap']:.2f})" if spend["daily_cap"] is not None else ""
    lines += [
        "",
        f"model spend: today ${spend['today']:.4f}, this month ${spend['month']:.4f}{cap}",
    ]
    return "\n".join(lines)
