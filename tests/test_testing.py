"""The wait and JSON-compare helpers every lab test and the pytest plugin rely on."""

from __future__ import annotations

import asyncio
import itertools
import os
import time

import pytest
from cnilab.sim.testing import MIN_TIMEOUT_S, WaitTimeout, json_subset, wait_for, wait_for_async, wait_json

from tests.labs import ns_pair


def test_json_subset_matches_extra_fields_and_reports_paths():
    actual = {"peers": [{"ip": "192.0.2.11", "state": "Established", "rx": 3}], "as": 13335, "new": 1}
    assert json_subset({"peers": [{"state": "Established"}], "as": 13335}, actual) == []
    assert json_subset({"peers": [{"state": "Idle"}]}, actual) == ["$.peers: no element matches {'state': 'Idle'}"]
    assert json_subset({"as": 64512}, actual) == ["$.as: expected 64512, got 13335"]
    assert json_subset({"gone": None}, actual) == []
    assert json_subset({"as": None}, actual) == ["$.as: expected absent, got 13335"]
    assert json_subset({"missing": 1}, actual) == ["$.missing: missing"]
    assert json_subset({"peers": {}}, actual) == ["$.peers: expected an object, got list"]


def test_json_subset_lists_of_other_length_match_by_membership():
    assert json_subset([{"k": 2}], [{"k": 1}, {"k": 2}]) == []
    assert json_subset([{"k": 3}], [{"k": 1}, {"k": 2}]) == ["$: no element matches {'k': 3}"]


def test_wait_for_returns_the_first_truthy_value_and_tolerates_errors_meanwhile():
    calls = itertools.count()

    def flaky() -> int:
        n = next(calls)
        if n < 2:
            raise ConnectionError("not yet")
        return n

    assert wait_for(flaky, 1, 0.01) == 2


def test_wait_for_never_gives_up_before_the_floor_and_says_what_it_saw():
    t0 = time.monotonic()
    with pytest.raises(WaitTimeout, match=r"widget not met in 5\.0s; last value: 0"):
        wait_for(lambda: 0, 0.1, 0.5, what="widget")
    assert time.monotonic() - t0 >= MIN_TIMEOUT_S


def test_wait_json_returns_the_matching_document():
    docs = iter([{"state": "Connect"}, {"state": "Established", "uptime": 1}])
    assert wait_json(lambda: next(docs), {"state": "Established"}, 1, 0.01) == {"state": "Established", "uptime": 1}


def test_wait_json_says_which_part_did_not_match():
    with pytest.raises(WaitTimeout, match=r"JSON did not match in 5\.0s: \$\.state: expected 'Up', got 'Down'"):
        wait_json(lambda: {"state": "Down"}, {"state": "Up"}, 0.1, 0.5)


def test_wait_for_async_lets_the_loop_run_between_attempts():
    async def main() -> int:
        box = {"n": 0}

        async def tick() -> None:
            while True:
                box["n"] += 1
                await asyncio.sleep(0.01)

        ticker = asyncio.create_task(tick())
        try:
            return await wait_for_async(lambda: box["n"] >= 5 and box["n"], 1, 0.01)
        finally:
            ticker.cancel()

    assert asyncio.run(main()) >= 5
    with pytest.raises(WaitTimeout, match="never not met"):
        asyncio.run(wait_for_async(lambda: False, 0.1, 1.0, what="never"))


@pytest.mark.root
def test_ns_pair_is_inside_the_leak_safety_net(tmp_path):
    """The pair's namespaces carry this test's tmp dir as owner, so the session net would find a leak."""
    from cnilab.sim.runtime.cleanup import netns_owner, netns_path

    from tests.conftest import IS_ROOT, _leaked_namespaces

    if not IS_ROOT:
        pytest.skip("needs root for network namespaces")
    with ns_pair(tmp_path) as pair:
        assert [netns_owner(ns) for ns in (pair.a, pair.b)] == [tmp_path, tmp_path]
        assert _leaked_namespaces(tmp_path.resolve()) == sorted([pair.a, pair.b])
        pair.sh(pair.a, "ping", "-c", "1", "-W", "5", pair.b4)
    assert not os.path.exists(netns_path(pair.a)) and not os.path.exists(netns_path(pair.b))
