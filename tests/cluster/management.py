"""What a cluster's management API says about a test's vhost (connections, queues)."""

from __future__ import annotations

from collections import Counter

import httpx


def broker_state(management: str, vhost: str) -> dict[str, object]:
    """What the broker holds for the vhost: for a failure message (where a job is stuck)."""
    auth = ("guest", "guest")
    queues = httpx.get(f"{management}/api/queues/{vhost}", auth=auth).json()
    channels = httpx.get(f"{management}/api/channels", auth=auth).json()
    return {
        "queues": {
            q["name"]: (
                q.get("messages_ready"),
                q.get("messages_unacknowledged"),
                q.get("consumers"),
            )
            for q in queues
            if q.get("messages")
        },
        "channels": [
            (
                c.get("connection_details", {}).get("peer_port"),
                c.get("number"),
                c.get("messages_unconfirmed"),
                c.get("messages_unacknowledged"),
                c.get("consumer_count"),
            )
            for c in channels
            if c.get("vhost") == vhost
        ],
    }


def connected_nodes(management: str, vhost: str) -> Counter[str]:
    got = httpx.get(f"{management}/api/vhosts/{vhost}/connections", auth=("guest", "guest"))
    got.raise_for_status()
    return Counter(c["node"] for c in got.json())
