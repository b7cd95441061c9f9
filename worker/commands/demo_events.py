"""The demo's change events: a small knowledge base edited by a team, with its security groups.

Articles are created, edited several times (so coalescing has work to do), some deleted; two
groups with members and permissions that name them. `expected_index` computes, last write
wins, what the index must hold once everything is pushed.
"""

from __future__ import annotations

import random
from typing import Any

CATEGORIES = ("billing", "accounts", "integrations", "security")
GROUPS = ("kb-editors", "kb-readers")
SEED = 2026


def _permissions(provider: str) -> list[dict[str, Any]]:
    return [{"allowAnonymous": False,
             "allowedPermissions": [{"identity": group, "identityType": "Group", "securityProvider": provider}
                                    for group in GROUPS],
             "deniedPermissions": []}]


def demo_events(source: str, provider: str, *, articles: int = 150, deletes: int = 20) -> list[dict[str, Any]]:
    """Change events in the order an upstream system would emit them (versions grow per item)."""
    rng = random.Random(SEED)
    events: list[dict[str, Any]] = []
    users = [f"user{n}@example.com" for n in range(12)]
    for group in GROUPS:
        members = [{"name": user, "type": "USER"} for user in rng.sample(users, 5)]
        events.append({"kind": "identity.upsert", "provider": provider, "version": 1,
                       "identity": {"name": group, "type": "GROUP"}, "members": members})
    edits = []
    for n in range(articles):
        category = CATEGORIES[n % len(CATEGORIES)]
        for revision in range(1, rng.randint(1, 5) + 1):
            edits.append((n, category, revision))
    rng.shuffle(edits)
    edits.sort(key=lambda edit: edit[2])  # every article's revisions in order, articles interleaved
    for n, category, revision in edits:
        events.append({
            "kind": "item.upsert", "source": source, "documentId": f"https://kb.example.com/{category}/{n}",
            "version": revision,
            "item": {"metadata": {"title": f"How to {category} #{n}", "category": category, "revision": revision,
                                  "tags": [category, "kb"]},
                     "data": f"<h1>How to {category} #{n}</h1><p>Revision {revision}.</p>", "fileExtension": ".html",
                     "permissions": _permissions(provider)},
        })
    for n in rng.sample(range(articles), deletes):
        category = CATEGORIES[n % len(CATEGORIES)]
        events.append({"kind": "item.delete", "source": source, "version": 100,
                       "documentId": f"https://kb.example.com/{category}/{n}"})
    return events


def expected_index(events: list[dict[str, Any]]) -> dict[str, int | None]:
    """documentId -> the revision the index must hold (None: must be absent)."""
    newest: dict[str, tuple[int, dict[str, Any]]] = {}
    for event in events:
        if event["kind"].startswith("item."):
            current = newest.get(event["documentId"])
            if current is None or event["version"] > current[0]:
                newest[event["documentId"]] = (event["version"], event)
    return {doc: (e["item"]["metadata"]["revision"] if e["kind"] == "item.upsert" else None)
            for doc, (_, e) in newest.items()}
