"""The ray.init decision every job makes: join a given or running cluster, or start a local Ray."""

from __future__ import annotations

import logging
import sys

import pytest

from actors.dataflow.ray_session import decide_session

NUM_CPUS = {"num_cpus": 2}  # what configs/demo.yaml sets for a local run


@pytest.mark.parametrize(
    "address, env, running, kwargs, source",
    [
        # Nothing to join: a local Ray, which alone takes the local-mode settings.
        (None, None, None, {"address": "local", "num_cpus": 2}, "local"),
        ("local", "10.0.0.1:6379", "10.0.0.2:6379", {"address": "local", "num_cpus": 2}, "local"),
        # ray job submit: RAY_ADDRESS names the cluster the driver runs in.
        (None, "10.0.0.1:6379", None, {"address": "10.0.0.1:6379"}, "RAY_ADDRESS"),
        (None, "10.0.0.1:6379", "10.0.0.2:6379", {"address": "10.0.0.1:6379"}, "RAY_ADDRESS"),
        ("auto", "10.0.0.1:6379", None, {"address": "10.0.0.1:6379"}, "RAY_ADDRESS"),
        # A concrete ray.address wins over RAY_ADDRESS, as in ray.init.
        ("10.0.0.9:6379", "10.0.0.1:6379", None, {"address": "10.0.0.9:6379"}, "ray.address"),
        ("ray://head:10001", None, None, {"address": "ray://head:10001"}, "ray.address"),
        # A cluster `ray start` left on this machine: joined through Ray's own discovery ("auto").
        (None, None, "10.0.0.2:6379", {"address": "auto"}, "running cluster 10.0.0.2:6379"),
        (None, "", "10.0.0.2:6379", {"address": "auto"}, "running cluster 10.0.0.2:6379"),
        # "auto" with nothing to find still asks to join: Ray says there is nothing, not a silent local start.
        ("auto", None, None, {"address": "auto"}, "ray.address"),
    ],
)
def test_joins_what_it_is_given_and_starts_local_ray_otherwise(address, env, running, kwargs, source):
    session = decide_session(address, NUM_CPUS, env, running)
    assert session.kwargs == kwargs
    assert session.source == source
    assert session.joins == (source != "local")


@pytest.mark.parametrize(
    "address, env, running",
    [(None, "10.0.0.1:6379", None), ("10.0.0.9:6379", None, None), (None, None, "10.0.0.2:6379")],
)
def test_a_job_that_joins_ignores_local_settings_and_says_so_in_one_line(address, env, running):
    session = decide_session(address, NUM_CPUS, env, running)
    assert "num_cpus" not in session.kwargs  # ray.init refuses num_cpus when connecting
    assert session.ignored == {"num_cpus": 2}
    line = session.describe()
    assert "\n" not in line
    assert "joining the Ray cluster" in line and "ignoring local-mode settings ray.num_cpus=2" in line


def test_unset_local_settings_are_neither_passed_nor_reported():
    local = decide_session(None, {"num_cpus": None}, None, None)
    assert local.kwargs == {"address": "local"}
    joined = decide_session(None, {"num_cpus": None}, "10.0.0.1:6379", None)
    assert joined.ignored == {}
    assert "ignoring" not in joined.describe()
    assert decide_session(None, NUM_CPUS, None, None).describe() == "starting a local Ray (ray.num_cpus=2)"


def test_init_ray_logs_one_line_and_passes_the_decided_kwargs(monkeypatch, caplog):
    """init_ray with a stand-in `ray` module: which call it makes, and the INFO line."""
    import types

    from actors.dataflow import ray_session

    calls = []
    fake = types.SimpleNamespace(
        is_initialized=lambda: False, init=lambda **kw: calls.append(kw), cluster_resources=lambda: {"CPU": 2.0}
    )
    monkeypatch.setitem(sys.modules, "ray", fake)
    monkeypatch.setattr(ray_session, "running_cluster_address", lambda: None)
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    config = types.SimpleNamespace(address=None, num_cpus=2)
    with caplog.at_level(logging.INFO, logger="babelforge.ray"):
        session = ray_session.init_ray(config)
    assert calls == [{"address": "10.0.0.1:6379"}]
    assert session.ignored == {"num_cpus": 2}
    ignoring = [r for r in caplog.records if "ignoring local-mode settings" in r.getMessage()]
    assert len(ignoring) == 1 and ignoring[0].levelno == logging.INFO
    fake.is_initialized = lambda: True
    assert ray_session.init_ray(config) is None and len(calls) == 1  # already up: no second ray.init


def test_running_cluster_discovery_uses_rays_address_file(tmp_path, monkeypatch):
    """The helper reads the file `ray start` writes (and `ray stop` removes) in Ray's temp dir."""
    from actors.dataflow import ray_session

    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path))  # Ray's temp dir is $RAY_TMPDIR/ray
    assert ray_session.running_cluster_address() is None
    (tmp_path / "ray").mkdir()
    (tmp_path / "ray" / "ray_current_cluster").write_text("10.0.0.2:6379\n")
    assert ray_session.running_cluster_address() == "10.0.0.2:6379"


def test_a_local_ray_starts_without_a_dashboard_unless_asked_and_a_joined_cluster_keeps_its_own():
    from actors.dataflow.ray_session import LOCAL_SYSTEM_CONFIG, local_defaults

    local = decide_session(None, NUM_CPUS, None, None, local_defaults("auto"))
    assert local.kwargs == {
        "address": "local",
        "include_dashboard": False,
        "_system_config": LOCAL_SYSTEM_CONFIG,
        "num_cpus": 2,
    }
    assert LOCAL_SYSTEM_CONFIG == {"enable_metrics_collection": False, "event_stats": False}
    assert "include_dashboard=False" in local.describe()
    assert local_defaults("off") == local_defaults("auto")
    # Asked for, the dashboard comes with what feeds it (Ray's own system config).
    asked = decide_session(None, {**NUM_CPUS, "dashboard": "on"}, None, None, local_defaults("on"))
    assert asked.kwargs == {
        "address": "local",
        "include_dashboard": True,
        "num_cpus": 2,
    }  # "dashboard" is no ray.init kwarg
    # ray job submit: the driver joins the cluster it was submitted to; its dashboard is the cluster's business.
    for dashboard in ("auto", "off", "on"):
        joined = decide_session(None, NUM_CPUS, "10.0.0.1:6379", None, local_defaults(dashboard))
        assert joined.kwargs == {"address": "10.0.0.1:6379"}


def test_init_ray_reports_an_explicit_dashboard_choice_as_ignored_when_joining(monkeypatch):
    import actors.dataflow.ray_session as session_module
    from engine.config import RayConfig

    calls = []
    fake_ray = type(sys)("ray")
    fake_ray.is_initialized = lambda: False
    fake_ray.init = lambda **kwargs: calls.append(kwargs)
    fake_ray.cluster_resources = lambda: {"CPU": 2.0}
    monkeypatch.setitem(sys.modules, "ray", fake_ray)
    monkeypatch.setattr(session_module, "running_cluster_address", lambda: None)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    local = {
        "address": "local",
        "include_dashboard": False,
        "_system_config": session_module.LOCAL_SYSTEM_CONFIG,
        "num_cpus": 2,
    }
    assert session_module.init_ray(RayConfig(num_cpus=2)).kwargs == local
    assert calls[-1] == local
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    joined = session_module.init_ray(RayConfig(dashboard="off"))
    assert calls[-1] == {"address": "10.0.0.1:6379"}
    assert joined.ignored == {"dashboard": "off"}
    assert session_module.init_ray(RayConfig()).ignored == {}  # auto: no request to ignore
