"""The client label of pointsman_client_requests_total stays bounded."""

from __future__ import annotations

from pointsman.monitoring import metrics


def value(model: str, client: str, status: str) -> float:
    sample = metrics.REGISTRY.get_sample_value(
        "pointsman_client_requests_total",
        {"model_name": model, "client": client, "status": status},
    )
    return sample or 0.0


def test_clients_past_the_cap_count_as_other() -> None:
    recorder = metrics.RequestRecorder(max_clients=2)
    before = value("cap-model", "other", "2xx")
    for client in ("a", "b", "c", "d", "a"):
        recorder.client_answered("cap-model", client, 200)
    recorder.client_answered("cap-model", "b", 422)
    assert value("cap-model", "a", "2xx") == 2
    assert value("cap-model", "b", "4xx") == 1
    assert value("cap-model", "c", "2xx") == 0
    assert value("cap-model", "other", "2xx") - before == 2
