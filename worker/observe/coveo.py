"""The configuration proved against Coveo without changing any index: `pushsync check`.

Three kinds of question, each answered by a call with no effect on content:
- the key and the organization: the Push API creates a file container (it expires unused);
- each source: the Platform API reads it (the key needs View on Sources for that);
- each security identity provider: the Platform API reads it (View on security providers).

Pushing needs neither View privilege, so a key that may not read is reported as "not verified",
never as wrong: the report says exactly what was and was not proved.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass

from worker.observe.probes import shown
from worker.pushapi import errors
from worker.pushapi.client import PushApiClient
from worker.store.keys import Target

_OS_REASON = re.compile(r"\[Errno -?\d+\] [^'\")]+|timed out|Name or service not known")
SOURCE = "source"
PROVIDER = "provider"


class Outcome(str, enum.Enum):
    """What one question of the check came to; the order is the severity."""

    VERIFIED = "verified"
    NOT_VERIFIED = "not verified"
    MISSING = "missing"
    """A source or provider Coveo does not have: create it before pushing."""
    REFUSED = "refused"
    """Coveo refused the key or the organization: nothing can be pushed."""
    UNREACHABLE = "unreachable"
    """The Push API did not answer: nothing could be proved."""


SEVERITY = list(Outcome)


@dataclass(frozen=True)
class Finding:
    """The answer to one question of the check."""

    subject: str
    """What was asked about: `key and organization ORG`, `source ID`, `provider ID`."""
    outcome: Outcome
    detail: str
    """One line saying what was proved, or why not, and what to do."""

    def line(self) -> str:
        """The finding as `pushsync check` prints it."""
        return f"{self.outcome.value:>12}  {self.subject}: {self.detail}"


@dataclass(frozen=True)
class Report:
    """Every finding of one check, the key's first."""

    findings: tuple[Finding, ...]

    @property
    def worst(self) -> Outcome:
        """The most severe outcome: what the check's exit code reports."""
        return max((finding.outcome for finding in self.findings), key=SEVERITY.index)

    def counts(self) -> dict[Outcome, int]:
        """How many findings had each outcome."""
        counts = dict.fromkeys(Outcome, 0)
        for finding in self.findings:
            counts[finding.outcome] += 1
        return counts


def subjects(configured_sources: Iterable[str], configured_providers: Iterable[str],
             known: Iterable[Target] = ()) -> tuple[list[str], list[str]]:
    """The sources and providers to check, sorted: those configured or named, and the `known`
    targets pushsync has worked for (read from the store by the caller)."""
    sources, providers = set(configured_sources), set(configured_providers)
    for target in known:
        (sources if target.kind == SOURCE else providers).add(target.id)
    return sorted(sources), sorted(providers)


def check(api: PushApiClient, *, organization: str, sources: Iterable[str], providers: Iterable[str],
          protected: Iterable[str] = ()) -> Report:
    """Ask Coveo about the key and organization, then each source and provider.

    api: a client with a short retry budget (a check must answer quickly).
    organization: the organization id the settings name, for the messages.
    sources: Push source ids to look up.
    providers: security identity provider ids to look up.
    protected: source ids pushsync must never call; named, never looked up.
    """
    key, reads_possible = _check_key(api, organization)
    findings = [key]
    protected = set(protected)
    for kind, ids in ((SOURCE, sources), (PROVIDER, providers)):
        for target_id in ids:
            subject = f"{kind} {target_id}"
            if kind == SOURCE and target_id in protected:
                findings.append(Finding(subject, Outcome.NOT_VERIFIED,
                                        "protected (PUSHSYNC_PROTECTED_SOURCES): pushsync never calls it"))
            elif not reads_possible:
                findings.append(Finding(subject, Outcome.NOT_VERIFIED, "not checked: the key or organization failed"))
            else:
                findings.append(_check_target(api, kind, target_id, organization))
    return Report(tuple(findings))


KEY_ANSWERS: tuple[tuple[type[errors.PushApiError] | tuple[type[errors.PushApiError], ...], Outcome, str, bool], ...] = (
    (errors.UnauthorizedError, Outcome.REFUSED,
     "the Push API refused the key ({answer}): COVEO_API_KEY is wrong, expired or disabled", False),
    # A key that may not push may still read: the lookups still say which sources and providers exist.
    (errors.AccessDeniedError, Outcome.REFUSED,
     "the key may not push to this organization ({answer}): it needs Edit on the Push sources (see the README)", True),
    (errors.NotFoundError, Outcome.REFUSED,
     "no such organization at {url} ({answer}): check COVEO_ORGANIZATION_ID and COVEO_REGION", False),
    (errors.OrganizationPausedError, Outcome.REFUSED,
     "the organization is paused ({answer}): resume it in the Administration Console", True),
    ((errors.TransportError, errors.ServerError, errors.ThrottledError), Outcome.UNREACHABLE,
     "the Push API at {url} did not answer usefully: {answer}", False),
    (errors.PushApiError, Outcome.REFUSED, "the Push API refused to create a file container: {answer}", True),
)
"""What creating a file container answered, first match wins: the outcome, the line (with the
answer and the organization's URL), and whether the lookups of sources and providers can still
tell anything."""


def _check_key(api: PushApiClient, organization: str) -> tuple[Finding, bool]:
    """The key's finding, and whether looking up sources and providers can still tell anything."""
    subject = f"key and organization {organization}"
    try:
        api.create_file_container()
    except errors.PushApiError as exc:
        for kinds, outcome, line, reads_possible in KEY_ANSWERS:
            if isinstance(exc, kinds):
                return Finding(subject, outcome, line.format(answer=_answer(exc), url=shown(api.organization_url))), \
                    reads_possible
        raise
    return Finding(subject, Outcome.VERIFIED,
                   "the Push API accepts the key (a file container was created; it expires unused)"), True


def _check_target(api: PushApiClient, kind: str, target_id: str, organization: str) -> Finding:
    subject = f"{kind} {target_id}"
    if api.platform_organization_url is None:
        return Finding(subject, Outcome.NOT_VERIFIED, "not checked: COVEO_PLATFORM_URL is not set (with "
                                                      "COVEO_PUSH_URL the Platform API's address is unknown)")
    read, privilege, create = (
        (api.get_source, "View on Sources", "a Push source") if kind == SOURCE
        else (api.get_security_provider, "View on Security identity providers", "a security identity provider")
    )
    try:
        read(target_id)
    except errors.NotFoundError as exc:
        return Finding(subject, Outcome.MISSING, f"organization {organization} has none ({_answer(exc)}): "
                                                 f"create {create} with this id first")
    except errors.AuthError as exc:
        # The Platform API answers 401 as well as 403 to a valid key without the privilege.
        return Finding(subject, Outcome.NOT_VERIFIED, f"the key may not read it ({_answer(exc)}): grant "
                                                      f"{privilege} to let check verify it (pushing does not need it)")
    except errors.PushApiError as exc:
        return Finding(subject, Outcome.NOT_VERIFIED, f"the Platform API did not answer usefully: {_answer(exc)}")
    return Finding(subject, Outcome.VERIFIED, "exists")


def _answer(exc: errors.PushApiError) -> str:
    if isinstance(exc, errors.StatusError):
        return f"{exc.status} {exc.error_code}".strip()
    # urllib3 nests the reason in a paragraph of pool details; the reason is what an operator acts on.
    reason = _OS_REASON.search(exc.message)
    return f"{exc.message.split(':', 1)[0]} ({reason.group(0)})" if reason else exc.message
