"""The whole pipeline in real processes: producers -> broker -> workers + beat -> emulator over HTTP."""

from __future__ import annotations

import pytest

from tests.worker.e2e import run_pipeline


@pytest.mark.parametrize("broker_kind", ["redis", "rabbitmq"])
def test_index_equals_last_write_wins_with_honest_brackets(request, workers, clean_emulator, redis_client,
                                                           redis_url, broker_kind):
    broker_url = request.getfixturevalue("redis_broker_url" if broker_kind == "redis" else "rabbitmq_url")
    if broker_kind == "rabbitmq":
        from tests.support.raw import purge_rabbit
        purge_rabbit(broker_url)
    run_pipeline(workers, clean_emulator, redis_url, broker_url)
