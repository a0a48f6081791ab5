"""Start or join Ray, once, the same way in every job.

A job joins a cluster when it is given one: `ray.address` in its config, `RAY_ADDRESS` in the
environment (`ray job submit` sets it for the job's driver), or a cluster that `ray start` left
on this machine (Ray's own discovery, the address file in its temp dir). Otherwise it starts its
own Ray, and only then do the local-mode settings (`ray.num_cpus`) apply: Ray refuses them when
connecting ("When connecting to an existing cluster, num_cpus and num_gpus must not be
provided"), so a job that joins ignores them and says so in one INFO line.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

log = logging.getLogger("babelforge.ray")

LOCAL_SETTINGS = (
    "num_cpus",
)  # ray.<name> settings that only a Ray the job starts itself can take, passed to ray.init as they are


# Ray's own bookkeeping that feeds only the dashboard's metrics and Ray's logs: a local Ray without
# a dashboard has no reader for it. Measured by benchmarks/translation.py (its CPU table and the
# "Ray's defaults" case). Keys of Ray 2.60's RayConfig: an unknown key stops gcs_server at start
# ("Received unexpected config parameter"), as enable_task_events did (a task option, not a key).
LOCAL_SYSTEM_CONFIG = {
    "enable_metrics_collection": False,  # core workers, raylet and GCS stop recording and exporting metrics
    "event_stats": False,  # per-handler timing of every event loop, only printed into Ray's logs
}


def local_defaults(dashboard: str = "auto") -> dict:
    """ray.init kwargs for a Ray the job starts itself, never for one it joins (a cluster keeps its
    dashboard, which `ray job submit` needs, and its own system config). A local Ray lives as long
    as the job: its dashboard (a head process of its own) and what feeds it have nobody to serve
    unless the user asks for them with ray.dashboard: on."""
    if dashboard == "on":
        return {"include_dashboard": True}
    return {"include_dashboard": False, "_system_config": dict(LOCAL_SYSTEM_CONFIG)}


@dataclass(frozen=True)
class RaySession:
    """How to call ray.init: its kwargs, where the address came from, and the local-mode
    settings the config set that a joined cluster does not take."""

    kwargs: dict
    source: str  # "ray.address", "RAY_ADDRESS", "running cluster", "local"
    ignored: dict = field(default_factory=dict)

    @property
    def joins(self) -> bool:
        return self.source != "local"

    def describe(self) -> str:
        if not self.joins:
            settings = (
                ", ".join(
                    f"ray.{k}={v}" if k in LOCAL_SETTINGS else f"{k}={v}"
                    for k, v in self.kwargs.items()
                    if k != "address"
                )
                or "defaults"
            )
            return f"starting a local Ray ({settings})"
        line = f"joining the Ray cluster at {self.kwargs['address']} (from {self.source})"
        if self.ignored:
            line += "; ignoring local-mode settings " + ", ".join(f"ray.{k}={v}" for k, v in self.ignored.items())
        return line


def decide_session(
    address: str | None,
    local_settings: dict,
    ray_address_env: str | None,
    running_cluster: str | None,
    defaults: dict | None = None,
) -> RaySession:
    """Pure: the ray.init call for a config's `ray.address` and local-mode settings, given
    RAY_ADDRESS and the address of a cluster `ray start` left on this machine (or None);
    `defaults` (local_defaults) are ray.init kwargs for a local Ray only, never reported as ignored.

    Follows Ray 2.60's own resolution (ray.init, services.get_ray_address_from_environment): a
    concrete address wins; None or "auto" take RAY_ADDRESS, then the running cluster; "auto"
    with neither still joins (Ray raises ConnectionError: nothing to join); "local" always starts
    a fresh Ray. The discovered cluster is joined as "auto" so that Ray enables token auth from
    the local token file, as it does for a cluster it finds itself.
    """
    set_locally = {k: v for k, v in local_settings.items() if v is not None}
    if address not in (None, "", "auto", "local"):
        return RaySession({"address": address}, "ray.address", set_locally)
    if address != "local":
        if ray_address_env:
            return RaySession({"address": ray_address_env}, "RAY_ADDRESS", set_locally)
        if running_cluster:
            return RaySession({"address": "auto"}, f"running cluster {running_cluster}", set_locally)
        if address == "auto":
            return RaySession({"address": "auto"}, "ray.address", set_locally)
    passed = {k: v for k, v in set_locally.items() if k in LOCAL_SETTINGS}  # the others arrive through `defaults`
    return RaySession({"address": "local", **(defaults or {}), **passed}, "local")


def running_cluster_address() -> str | None:
    """The address of the cluster the last `ray start` on this machine left (Ray's address file,
    which `ray stop` removes), or None."""
    from ray._private.services import find_bootstrap_address

    return find_bootstrap_address(None)


def init_ray(ray_config) -> RaySession | None:
    """Start or join Ray for a job whose config has a `ray:` section (address, num_cpus). Does
    nothing when Ray is already initialised in this process (returns None)."""
    import ray

    if ray.is_initialized():
        return None
    local = {name: getattr(ray_config, name, None) for name in LOCAL_SETTINGS}
    # "auto" is no request: a joined cluster keeps its dashboard and is not told it was ignored.
    dashboard = getattr(ray_config, "dashboard", "auto")
    if dashboard != "auto":
        local["dashboard"] = dashboard
    session = decide_session(
        ray_config.address, local, os.environ.get("RAY_ADDRESS"), running_cluster_address(), local_defaults(dashboard)
    )
    log.info(session.describe())
    ray.init(**session.kwargs)
    log.info("ray cluster resources: %s", ray.cluster_resources())
    return session
