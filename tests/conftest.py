"""Fixtures every ring can use: a real S3-compatible server (moto's standalone server) on 127.0.0.1."""

from __future__ import annotations

import socket
import sys
import uuid

import pytest


@pytest.fixture(scope="session")
def s3_server():
    """A real S3 server on 127.0.0.1 for this session; yields its endpoint URL. Credentials are
    dummies: moto accepts any."""
    pytest.importorskip("moto.server", reason="moto[server] (the dev extra) runs the local S3 server")
    from moto.server import ThreadedMotoServer

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


def shut_down_ray() -> None:
    """Stop a Ray this process started, if any (only where ray is already imported)."""
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        ray.shutdown()


@pytest.fixture
def s3_env(s3_server, monkeypatch):
    """A fresh bucket on the local S3 server, and the standard AWS variables that point pyarrow
    (and a job started with this environment) at it. Yields the variables plus BUCKET.

    Ray's workers keep the environment of the Ray that started them: a Ray an earlier test left
    running in this process has workers without these credentials, whose unsigned uploads the
    local server stores with their chunked framing (an unreadable Parquet file). So a Ray left
    running is stopped first, and one started under these variables is stopped afterwards."""
    import boto3

    shut_down_ray()

    bucket = f"bf-{uuid.uuid4().hex[:12]}"
    secret = f"bf-secret-{uuid.uuid4().hex}"  # distinctive, so a test can check that no log shows it
    env = {
        "AWS_ENDPOINT_URL": s3_server,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": secret,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    boto3.client(
        "s3", endpoint_url=s3_server, aws_access_key_id="testing", aws_secret_access_key=secret, region_name="us-east-1"
    ).create_bucket(Bucket=bucket)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    yield {**env, "BUCKET": bucket}
    shut_down_ray()
