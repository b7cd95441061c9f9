"""The receiver's configuration: errors name the file and the setting, never the secret."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from producers.errors import ConfigError
from producers.webhook.app import create_app
from producers.webhook.config import load_config, parse_config

GENERIC = {"adapter": "generic", "secret": "hidden-secret"}
MAPPED = {"adapter": "contentful", "secret": "hidden-secret".ljust(64, "-"), "item": {"document_id": "https://x.example/{id}", "body": "body"}}


def test_a_toml_file_loads_with_defaults_and_secrets_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HOOK_SECRET", "from-env")
    path = tmp_path / "hooks.toml"
    path.write_text('[sources.direct]\nadapter = "generic"\nsecret_env = "HOOK_SECRET"\n')
    config = load_config(path)
    hook = config.sources["direct"]
    assert (hook.name, hook.source_id, hook.secret_value()) == ("direct", "direct", "from-env")
    assert config.server.max_body_bytes == 1024 * 1024
    assert "from-env" not in repr(config)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ({"sources": {}}, "sources: Dictionary should have at least 1 item"),
        ({"sources": {"a": {**GENERIC, "adapter": "wordpress"}}}, "sources.a.adapter"),
        ({"sources": {"a": {"adapter": "generic"}}}, "sources.a.secret: Field required"),
        ({"sources": {"a": {"adapter": "generic", "secret_env": "PUSHSYNC_TEST_UNSET"}}},
         "secret_env names PUSHSYNC_TEST_UNSET, which is not set"),
        ({"sources": {"a": {**MAPPED, "item": None}}}, "adapter 'contentful' needs an [sources.a.item] table"),
        ({"sources": {"a": {**GENERIC, "colour": 1}}}, "sources.a.colour: Extra inputs are not permitted"),
        ({"server": {"max_body_bytes": 1}, "sources": {"a": GENERIC}}, "server.max_body_bytes"),
        # An empty secret or token would let anyone in (an empty Strapi token matches a missing header).
        ({"sources": {"a": {**GENERIC, "secret": ""}}}, "sources.a.secret"),
        ({"sources": {"a": {"adapter": "strapi", "secret": "", "item": MAPPED["item"]}}}, "sources.a.secret"),
        ({"sources": {"a": {"adapter": "strapi", "secret": "hidden-secret\n", "item": MAPPED["item"]}}},
         "starts or ends with whitespace"),
        # Without a body field every upsert would be refused: the service takes no item without content.
        ({"sources": {"a": {**MAPPED, "item": {"document_id": "https://x.example/{id}"}}}},
         "sources.a.item.body: Field required"),
    ],
)
def test_bad_settings_are_named(raw: dict[str, Any], reason: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(raw, origin="hooks.toml")
    assert reason in str(caught.value) and str(caught.value).startswith("hooks.toml:")
    assert "hidden-secret" not in str(caught.value)


def test_unreadable_and_malformed_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the webhook configuration"):
        load_config(tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[sources\n")
    with pytest.raises(ConfigError, match="broken.toml: not valid TOML"):
        load_config(broken)


def test_a_template_naming_a_placeholder_the_adapter_does_not_fill_is_refused_at_start_up() -> None:
    config = parse_config({"sources": {"a": {**MAPPED, "item": {"document_id": "https://x.example/{slug}", "body": "body"}}}})
    with pytest.raises(ConfigError, match=r"unknown placeholder\(s\) slug; contentful fills \{id\}"):
        create_app(config, "redis://127.0.0.1:1/0")


@pytest.mark.parametrize("length", [1, 12, 63, 65])
def test_a_contentful_secret_that_contentful_would_never_sign_with_is_refused_at_start_up(length: int) -> None:
    config = parse_config({"sources": {"a": {**MAPPED, "secret": "§" * length}}})
    with pytest.raises(ConfigError, match=f"is 64 characters, this one has {length}") as caught:
        create_app(config, "redis://127.0.0.1:1/0")
    assert "§" not in str(caught.value)
