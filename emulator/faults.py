"""Fault injection: rules that make matching Push API or upload requests fail or slow down.

A rule matches by method and a glob over the path (`*` also crosses `/`). It fires for its next
`times` matches, or on each match with `probability`; it may only add `latency` seconds.
"""

from __future__ import annotations

import asyncio
import fnmatch
import random
from dataclasses import dataclass

from starlette.types import Receive, Scope, Send

from emulator.bodies import discard
from emulator.errors import TOO_MANY_REQUESTS, EmulatorError, error_response
from emulator.traffic import TrafficMiddleware

FAULT_SCOPE_KEY = "emulator.fault"
"""Where the middleware leaves the id of the rule that fired, for the request log."""
INJECTED_FAULT = "INJECTED_FAULT"
_DEFAULT_CODES = {
    429: TOO_MANY_REQUESTS, 500: "INTERNAL_ERROR", 502: "BAD_GATEWAY", 503: "SERVICE_UNAVAILABLE", 504: "GATEWAY_TIMEOUT",
}
_RULE_KEYS = {"method", "path", "status", "errorCode", "message", "retryAfter", "times", "probability", "latency"}


def _bad(message: str) -> EmulatorError:
    return EmulatorError(400, "INVALID_FAULT", message)


@dataclass(slots=True)
class FaultRule:
    """One rule; see the module docstring for what its fields mean."""

    id: int
    method: str
    path: str
    status: int | None
    error_code: str
    message: str
    retry_after: int | None
    times: int | None
    probability: float
    latency: float
    hits: int = 0

    @classmethod
    def from_json(cls, rule_id: int, body: object) -> FaultRule:
        """Validate an admin API rule body (400 INVALID_FAULT naming the first problem)."""
        if not isinstance(body, dict):
            raise _bad("a fault rule must be a JSON object")
        if set(body) - _RULE_KEYS:
            raise _bad(f"unknown keys {sorted(set(body) - _RULE_KEYS)}; known: {sorted(_RULE_KEYS)}")
        status = _number(body, "status", int, None, 400, 599)
        latency = _number(body, "latency", float, 0.0, 0, 600)
        if status is None and not latency:
            raise _bad("a fault rule needs a status, a latency, or both")
        return cls(
            id=rule_id,
            method=str(body.get("method", "*")).upper(),
            path=str(body.get("path", "*")),
            status=status,
            error_code=str(body.get("errorCode") or _DEFAULT_CODES.get(status or 0, INJECTED_FAULT)),
            message=str(body.get("message", "fault injected by the emulator")),
            retry_after=_number(body, "retryAfter", int, None, 0, 86_400),
            times=_number(body, "times", int, None, 1, 10**9),
            probability=_number(body, "probability", float, 1.0, 0, 1),
            latency=latency,
        )

    def matches(self, method: str, path: str) -> bool:
        """Whether a request with `method` and `path` is one this rule is about."""
        return self.method in ("*", method) and fnmatch.fnmatchcase(path, self.path)

    def to_json(self) -> dict[str, object]:
        """The rule as the admin API shows it, with how often it fired."""
        return {
            "id": self.id, "method": self.method, "path": self.path, "status": self.status,
            "errorCode": self.error_code, "message": self.message, "retryAfter": self.retry_after,
            "times": self.times, "probability": self.probability, "latency": self.latency, "hits": self.hits,
        }


def _number(body: dict[str, object], key: str, kind: type, default: object, low: float, high: float) -> object:
    if key not in body or (body[key] is None and default is None):
        return default
    value = body[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not isinstance(value, int)):
        raise _bad(f"{key} must be {'an integer' if kind is int else 'a number'}")
    if not low <= value <= high:
        raise _bad(f"{key} must be between {low} and {high}")
    return kind(value)


class FaultStore:
    """The rules in force, first match first."""

    def __init__(self) -> None:
        self._rules: list[FaultRule] = []
        self._next_id = 1
        self._random = random.Random()

    def add(self, body: object) -> FaultRule:
        """Add a rule from its JSON body; the new rule, with its id."""
        rule = FaultRule.from_json(self._next_id, body)
        self._next_id += 1
        self._rules.append(rule)
        return rule

    def remove(self, rule_id: int) -> bool:
        """Remove one rule; whether it existed."""
        kept = [rule for rule in self._rules if rule.id != rule_id]
        removed = len(kept) != len(self._rules)
        self._rules = kept
        return removed

    def clear(self) -> None:
        """Remove every rule."""
        self._rules.clear()

    def describe(self) -> list[dict[str, object]]:
        """Every rule in force."""
        return [rule.to_json() for rule in self._rules]

    def pick(self, method: str, path: str) -> FaultRule | None:
        """The rule that fires for this request, if one does (counting the match against `times`)."""
        for rule in self._rules:
            if rule.matches(method, path) and self._random.random() < rule.probability:
                rule.hits += 1
                if rule.times is not None:
                    rule.times -= 1
                    if rule.times == 0:
                        self._rules.remove(rule)
                return rule
        return None


class FaultMiddleware(TrafficMiddleware):
    """Applies the current emulator's fault rules before the request reaches its route."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        rule = self.current().faults.pick(scope["method"], scope["path"])
        if rule is None:
            await self.app(scope, receive, send)
            return
        scope[FAULT_SCOPE_KEY] = rule.id
        if rule.latency:
            await asyncio.sleep(rule.latency)
        if rule.status is None:
            await self.app(scope, receive, send)
            return
        await discard(receive)  # so that the client, done sending, reads the answer
        error = EmulatorError(rule.status, rule.error_code, rule.message, retry_after=rule.retry_after)
        await error_response(error)(scope, receive, send)
