"""The store on object storage, for real: an S3-compatible server (moto's) started by the test on
localhost; extract, run and query on s3:// give the same rows and numbers as on a local folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

from bench.store import Store
from tests.conftest import PROJECT

ENCODER = "effnet/lite0.random"
RUN = ("run", "knn-influence", "--dataset", "demo-mini", "--encoders", ENCODER, "--group", "sharpening", "--seeds", "2")
QUERY = ("query", "--dataset", "demo-mini", "--encoder", ENCODER, "--where", "processing = 'sharpen2' AND label < 3",
         "--columns", "image_id,split,label", "--format", "csv")


def _bench(home: Path, environment: dict[str, str], *arguments: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "bench", "--home", str(home), *arguments], cwd=PROJECT, capture_output=True,
                          text=True, timeout=600, env={**os.environ, "HF_HUB_OFFLINE": "1", **environment})
    assert done.returncode == 0, done.stderr
    return done


def test_every_verb_on_s3_matches_a_local_folder(s3: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    uri = f"s3://bench/{uuid.uuid4().hex}"
    remote = {**s3, "BENCH_EMBEDDINGS_URI": uri}
    local_home, remote_home = tmp_path / "local", tmp_path / "remote"
    _bench(local_home, {}, *RUN)
    _bench(remote_home, remote, *RUN)
    assert not (remote_home / "embeddings").exists()  # the vectors went to the bucket

    cells = [json.loads(next((home / "reports" / "results").glob("**/*.json")).read_text()) for home in (local_home, remote_home)]
    assert cells[0]["metrics"] == cells[1]["metrics"]
    assert cells[1]["provenance"]["table_version"] >= 1

    assert _bench(local_home, {}, *QUERY).stdout == _bench(remote_home, remote, *QUERY).stdout

    for name, value in s3.items():
        monkeypatch.setenv(name, value)
    local, bucket = Store(local_home / "embeddings"), Store(uri)
    assert bucket.table_names() == local.table_names()
    for split in ("train", "val"):
        mine, theirs = (store.split_vectors("demo-mini", ENCODER, split, ["jpeg95_444", "sharpen2", "sharpen4"]) for store in (local, bucket))
        assert list(mine.image_ids) == list(theirs.image_ids)
        for name in mine.vectors:
            np.testing.assert_allclose(mine.vectors[name], theirs.vectors[name], rtol=0, atol=1e-5)


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def strict_s3() -> Iterator[dict[str, str]]:
    """A moto S3 server that checks credentials (after the one unchecked call that makes its bucket)."""
    pytest.importorskip("moto.server", reason="moto (the dev extra) runs the S3-compatible test server")
    boto3 = pytest.importorskip("boto3")
    import socket
    import time

    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, env={**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "1"})
    endpoint = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):  # wait for the port without a request: the one unchecked call makes the bucket
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y").create_bucket(
            Bucket="locked")
        yield {"AWS_ACCESS_KEY_ID": "unknown", "AWS_SECRET_ACCESS_KEY": "wrong", "AWS_ENDPOINT_URL": endpoint,
               "AWS_ALLOW_HTTP": "true", "AWS_REGION": "us-east-1", "BENCH_EMBEDDINGS_URI": "s3://locked/emb"}
    finally:
        server.kill()


def _refused(home: Path, environment: dict[str, str], *arguments: str) -> str:
    done = subprocess.run([sys.executable, "-m", "bench", "--home", str(home), *arguments], cwd=PROJECT, capture_output=True,
                          text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1", **environment})
    error = " ".join(done.stderr.split())
    assert done.returncode == 2 and "Traceback" not in error and error.count("error:") == 1, done.stderr
    return error


def test_a_store_that_cannot_be_used_is_one_line_naming_the_uri(s3: dict[str, str], strict_s3: dict[str, str], tmp_path: Path) -> None:
    home = tmp_path / "home"
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    closed = {**s3, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{_free_port()}", "BENCH_EMBEDDINGS_URI": "s3://bench/x"}
    cases = {
        "foo://bar": ({"BENCH_EMBEDDINGS_URI": "foo://bar"}, "an unknown URI scheme"),
        "a file": ({"BENCH_EMBEDDINGS_URI": str(a_file)}, "a file where the store's folder should be"),
        "no answer": (closed, "no answer from the endpoint"),
        "refused credentials": (strict_s3, "access refused: check the credentials"),
    }
    for name, (environment, plain) in cases.items():
        for arguments in (QUERY, ("extract", "--dataset", "demo-mini", "--encoders", ENCODER, "--processings", "sharpen2")):
            error = _refused(home, environment, *arguments)
            assert plain in error and environment["BENCH_EMBEDDINGS_URI"] in error and "BENCH_EMBEDDINGS_URI" in error, (name, error)
    assert not (home / "embeddings").exists()
