"""LeaderElectionConfig: defaults and client-go's validation, errors naming the field."""

from __future__ import annotations

import math
import os
import socket
from typing import Any

import pytest

from faro.leaderelection import LeaderElectionConfig, default_identity, micro_time


def test_defaults_are_client_go_s() -> None:
    config = LeaderElectionConfig("ns", "name", "me")
    assert (config.lease_duration, config.renew_deadline, config.retry_period) == (15.0, 10.0,
                                                                                   2.0)


def test_identity_defaults_to_pod_name_else_host_and_pid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POD_NAME", "faro-0")
    assert LeaderElectionConfig("ns", "name").identity == "faro-0"
    monkeypatch.delenv("POD_NAME")
    assert default_identity() == f"{socket.gethostname()}_{os.getpid()}"
    assert LeaderElectionConfig("ns", "name").identity == default_identity()


@pytest.mark.parametrize(("changes", "field"), [
    ({"namespace": ""}, "namespace"),
    ({"name": ""}, "name"),
    ({"identity": ""}, "identity"),
    ({"lease_duration": 0}, "lease_duration"),
    ({"lease_duration": math.inf}, "lease_duration"),
    ({"renew_deadline": -1.0}, "renew_deadline"),
    ({"retry_period": 0.0}, "retry_period"),
    ({"retry_period": True}, "retry_period"),
    ({"lease_duration": 10.0}, "lease_duration"),
    ({"renew_deadline": 2.4}, "renew_deadline"),
])
def test_invalid_values_name_the_field(changes: dict[str, Any], field: str) -> None:
    arguments: dict[str, Any] = {"namespace": "ns", "name": "name", "identity": "me"}
    arguments.update(changes)
    with pytest.raises(ValueError, match=field):
        LeaderElectionConfig(**arguments)


def test_the_boundaries_just_inside_are_accepted() -> None:
    LeaderElectionConfig("ns", "name", "me", lease_duration=1.0, renew_deadline=0.6,
                         retry_period=0.2)
    LeaderElectionConfig("ns", "name", "me", lease_duration=10.01, renew_deadline=10.0,
                         retry_period=8.3)


def test_micro_time_is_rfc3339_with_microseconds() -> None:
    assert micro_time(0.5) == "1970-01-01T00:00:00.500000Z"
