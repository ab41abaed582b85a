"""`fetch flickrexif` against a local web server that serves photos, split files and every fault a
download meets on the web: missing pages, server errors, stalls, short bodies, HTML instead of a
photo, Flickr's stand-in for a removed photo."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable, Iterator
from urllib.parse import unquote, urlsplit

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from bench.__main__ import main
from bench.data.annotated import flickrexif
from bench.data.record import DatasetOptions
from tests.conftest import PROJECT, bench_command, run_bench

QUICK = ("--timeout", "1", "--retries", "2", "--backoff", "0.05", "--workers", "4")
MAKE = "split_data_target_attribute=Make.json"
APERTURE = "split_data_target_attribute=Aperture.json"
YEAR = "split_data_target_attribute=Year.json"
HUB_COLUMNS = ("Flickr ID", "url", "owner", "Make", "Model", "Exposure", "Aperture", "ISO Speed", "Focal Length")


def photo(seed: int, kind: str = "JPEG") -> bytes:
    """A small image file whose bytes differ for every seed."""
    pixels = np.random.default_rng(seed).integers(0, 256, size=(24, 32, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, kind, **({"quality": 85} if kind == "JPEG" else {}))
    return buffer.getvalue()


def split_file(train: list[int], val: list[int], test: list[int], attribute: str) -> bytes:
    """A split file in the paper's format (labels alternate between two classes)."""
    return json.dumps({
        "train_ids": train, "val_ids": val, "test_ids": test,
        "encoded_train_labels": [i % 2 for i in range(len(train))], "encoded_val_labels": [i % 2 for i in range(len(val))],
        "encoded_test_labels": [i % 2 for i in range(len(test))], "label_encoder_classes": ["a", "b"],
        "target_attribute": attribute,
    }).encode()


class Server:
    """http.server in a thread: a route per path, a count of requests per path, a gate that
    holds slow responses until released."""

    def __init__(self) -> None:
        self.routes: dict[str, Callable[[BaseHTTPRequestHandler, int], None]] = {}
        self.requests: Counter[str] = Counter()
        self.gate = threading.Event()
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                path = unquote(urlsplit(self.path).path)
                with server._lock:
                    server.requests[path] += 1
                    seen = server.requests[path]
                server.routes.get(path, status(404))(self, seen)

            def log_message(self, *_: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.handle_error = lambda *_: None  # a client that gave up leaves a broken pipe: expected here
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def image_requests(self) -> Counter[str]:
        return Counter({path: count for path, count in self.requests.items() if not path.startswith("/splits")})


def send(handler: BaseHTTPRequestHandler, code: int, body: bytes, kind: str = "image/jpeg", length: int | None = None) -> None:
    handler.send_response(code)
    handler.send_header("Content-Type", kind)
    handler.send_header("Content-Length", str(len(body) if length is None else length))
    handler.end_headers()
    handler.wfile.write(body)


def serve(body: bytes, kind: str = "image/jpeg") -> Callable[[BaseHTTPRequestHandler, int], None]:
    return lambda handler, seen: send(handler, 200, body, kind)


def status(code: int) -> Callable[[BaseHTTPRequestHandler, int], None]:
    return lambda handler, seen: send(handler, code, f"<html><body>error {code}</body></html>".encode(), "text/html")


@pytest.fixture
def server() -> Iterator[Server]:
    running = Server()
    running.thread.start()
    yield running
    running.gate.set()
    running.httpd.shutdown()
    running.httpd.server_close()


@pytest.fixture
def hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the `datasets` cache of every CLI run inside the test's folder."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))


def write_table(folder: Path, urls: dict[int, str | None]) -> Path:
    """The metadata table in the Hub's layout: <folder>/data/train-00000-of-00001.parquet."""
    (folder / "data").mkdir(parents=True)
    ids = sorted(urls)
    columns = {name: [f"{name} {i}" for i in ids] for name in HUB_COLUMNS[2:]}
    table = pa.table({"Flickr ID": pa.array(ids, pa.int64()), "url": [urls[i] for i in ids], **columns})
    pq.write_table(table, folder / "data" / "train-00000-of-00001.parquet")
    return folder


def files_below(root: Path) -> set[str]:
    """Every file under root but the lock that keeps two fetches apart."""
    return {path.relative_to(root).as_posix() for path in root.rglob("*") if path.is_file() and path.name != ".fetch.lock"}


def manifest(root: Path) -> dict[int, dict]:
    rows = [json.loads(line) for line in (root / "fetch-manifest.jsonl").read_text().splitlines()]
    return {row["flickr_id"]: row for row in rows}


def test_fetch_keeps_exact_bytes_and_lists_every_failure(server: Server, tmp_path: Path, hub_cache: None) -> None:
    good = {100 + i: photo(100 + i) for i in range(8)}
    routes = {f"/photos/{i}_b.jpg": serve(body) for i, body in good.items()}
    faults = {201: "/missing.jpg", 202: "/broken.jpg", 203: "/flaky.jpg", 204: "/stall.jpg",
              205: "/short.jpg", 206: "/page.jpg", 207: "/gone.jpg", 210: "/photos/210.PNG", 211: "/photos/211"}
    flaky, png, bare = photo(203), photo(210, "PNG"), photo(211)
    routes |= {
        "/missing.jpg": status(404),
        "/broken.jpg": status(500),
        "/flaky.jpg": lambda handler, seen: send(handler, 500, b"busy", "text/plain") if seen == 1 else send(handler, 200, flaky),
        "/stall.jpg": lambda handler, seen: server.gate.wait(10),
        "/short.jpg": lambda handler, seen: send(handler, 200, photo(205)[:300], length=len(photo(205))),
        "/page.jpg": serve(b"<!doctype html><html><body>sign in to see this photo</body></html>", "text/html"),
        "/gone.jpg": lambda handler, seen: (handler.send_response(302), handler.send_header("Location", "/images/photo_unavailable.png"),
                                            handler.send_header("Content-Length", "0"), handler.end_headers()),
        "/images/photo_unavailable.png": serve(photo(999, "PNG"), "image/png"),
        "/photos/210.PNG": serve(png, "image/png"),
        "/photos/211": serve(bare),
    }
    splits = {MAKE: split_file([100, 101, 102, 201, 202, 203], [204, 205], [206, 208], "Make"),
              APERTURE: split_file([102, 103, 104, 105, 207], [106, 209], [107, 210, 211], "Aperture")}
    routes |= {f"/splits/{name}": serve(body, "application/json") for name, body in splits.items()}
    server.routes.update(routes)
    urls: dict[int, str | None] = {i: server.url(f"/photos/{i}_b.jpg") for i in good}
    urls |= {i: server.url(path) for i, path in faults.items()} | {209: None, 999: server.url("/photos/999_b.jpg")}
    source = write_table(tmp_path / "hub-copy", urls)
    root = tmp_path / "flickrexif"
    command = ("fetch", "flickrexif", "--root", str(root), "--source", str(source), "--splits-url", server.url("/splits"),
               "--attributes", "Make,Aperture", *QUICK)

    first = run_bench(tmp_path / "home", *command, timeout=120)

    assert first.returncode == 0, first.stderr
    for name, body in splits.items():
        assert (root / "splits" / name).read_bytes() == body
    for i, body in good.items():
        assert (root / f"{i}.jpg").read_bytes() == body, i
    assert (root / "203.jpg").read_bytes() == flaky  # a 500 on the first try, the photo on the second
    assert (root / "210.png").read_bytes() == png  # the URL's extension, lower-cased
    assert (root / "211.jpg").read_bytes() == bare  # no extension in the URL: jpg
    arrived = {f"{i}.jpg" for i in [*good, 203, 211]} | {"210.png"}
    assert files_below(root) == arrived | {f"splits/{name}" for name in splits} | {"fetch-manifest.jsonl"}
    missing = manifest(root)
    assert {i: row["reason"] for i, row in missing.items()} == {
        201: "404", 202: "http 500 after 3 tries", 204: "timeout", 205: "truncated", 206: "not an image",
        207: "photo unavailable", 208: "no URL in the dataset", 209: "no URL in the dataset",
    }
    assert {i: row["url"] for i, row in missing.items()} == {i: urls.get(i) for i in missing}
    tries = server.image_requests()
    assert (tries["/missing.jpg"], tries["/broken.jpg"], tries["/flaky.jpg"], tries["/stall.jpg"], tries["/short.jpg"]) == (1, 3, 2, 3, 3)
    assert tries["/photos/999_b.jpg"] == 0  # in the table but in no chosen split file
    assert "requested 19 photos" in first.stdout and "0 already present, 11 downloaded, 8 missing" in first.stdout
    assert "no URL in the dataset: 2" in first.stdout and str(root / "fetch-manifest.jsonl") in first.stdout

    before = server.image_requests()
    second = run_bench(tmp_path / "home", *command, "--retries", "0", timeout=120)  # one try each: the failures are known

    assert second.returncode == 0, second.stderr
    again = server.image_requests() - before
    assert set(again) == {"/missing.jpg", "/broken.jpg", "/stall.jpg", "/short.jpg", "/page.jpg", "/gone.jpg",
                          "/images/photo_unavailable.png"}  # only the failures
    assert "11 already present, 0 downloaded, 8 missing" in second.stdout
    assert manifest(root).keys() == missing.keys()


def test_split_files_already_in_root_and_chosen_attribute(server: Server, tmp_path: Path, hub_cache: None) -> None:
    bodies = {i: photo(i) for i in (11, 12, 13, 14, 15)}
    server.routes.update({f"/p/{i}.jpg": serve(body) for i, body in bodies.items()})
    source = write_table(tmp_path / "hub-copy", {i: server.url(f"/p/{i}.jpg") for i in bodies})
    root = tmp_path / "flickrexif"
    (root / "splits").mkdir(parents=True)
    (root / "splits" / MAKE).write_bytes(split_file([11, 12], [13], [14], "Make"))
    (root / "splits" / YEAR).write_bytes(split_file([15], [], [], "Year"))

    done = run_bench(tmp_path / "home", "fetch", "flickrexif", "--root", str(root), "--source", str(source),
                     "--splits-url", server.url("/splits"), "--attributes", "make", *QUICK, timeout=120)

    assert done.returncode == 0, done.stderr
    assert sorted(server.requests) == [f"/p/{i}.jpg" for i in (11, 12, 13, 14)]  # no split file asked for, nothing of Year
    assert not list(root.glob("15.*"))
    assert (root / "fetch-manifest.jsonl").read_text() == ""
    listing = flickrexif(DatasetOptions(root=root, attribute="Make"))  # the dataset reads what fetch wrote
    found = sorted((record.image_id, record.split) for record in listing.records)
    assert found == [("11", "train"), ("12", "train"), ("13", "val"), ("14", "test")]
    assert all(Path(record.path).read_bytes() == bodies[int(record.image_id)] for record in listing.records)
    assert listing.rejects == []


def held(server: Server, body: bytes) -> Callable[[BaseHTTPRequestHandler, int], None]:
    def respond(handler: BaseHTTPRequestHandler, seen: int) -> None:  # half the body, then wait for the gate
        handler.send_response(200)
        handler.send_header("Content-Type", "image/jpeg")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body[: len(body) // 2])
        handler.wfile.flush()
        server.gate.wait(20)
        handler.wfile.write(body[len(body) // 2:])
    return respond


def held_fetch(server: Server, tmp_path: Path) -> tuple[dict[int, bytes], set[int], Path, tuple[str, ...]]:
    """16 photos: 4 answer at once, the others send half their body and wait for the server's gate."""
    bodies = {1000 + i: photo(1000 + i) for i in range(16)}
    quick = set(list(bodies)[:4])
    server.routes.update({f"/p/{i}.jpg": serve(body) if i in quick else held(server, body) for i, body in bodies.items()})
    source = write_table(tmp_path / "hub-copy", {i: server.url(f"/p/{i}.jpg") for i in bodies})
    root = tmp_path / "flickrexif"
    (root / "splits").mkdir(parents=True)
    (root / "splits" / MAKE).write_bytes(split_file(sorted(bodies), [], [], "Make"))
    command = ("fetch", "flickrexif", "--root", str(root), "--source", str(source), "--attributes", "Make",
               "--workers", "2", "--timeout", "30")
    return bodies, quick, root, command


def interruptible() -> None:
    """Ctrl-C reaches the child even where the suite runs as a background job (which ignores SIGINT)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_until_held(tmp_path: Path, root: Path, command: tuple[str, ...], quick: int) -> subprocess.Popen[str]:
    """The fetch started, returned once the quick photos are saved and both workers hold half a body."""
    process = subprocess.Popen(bench_command(tmp_path / "home", *command), cwd=PROJECT, env={**os.environ, "HF_HUB_OFFLINE": "1"},
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=interruptible)
    while not (len(list(root.glob("*.jpg"))) == quick and len(list((root / ".fetch-partial").glob("*.part"))) == 2):
        assert process.poll() is None, "the fetch ended before it could be stopped"
        time.sleep(0.05)
    return process


def test_killed_fetch_resumes_without_partial_files_or_repeats(server: Server, tmp_path: Path, hub_cache: None) -> None:
    bodies, quick, root, command = held_fetch(server, tmp_path)
    process = start_until_held(tmp_path, root, command, len(quick))
    process.send_signal(signal.SIGKILL)
    process.wait(10)
    in_flight = {int(path.name.split(".")[0]) for path in (root / ".fetch-partial").glob("*.part")}
    server.gate.set()

    assert {int(path.stem) for path in root.glob("*.jpg")} == quick  # only whole photos under final names
    assert all((root / f"{i}.jpg").read_bytes() == bodies[i] for i in quick)
    resumed = run_bench(tmp_path / "home", *command, timeout=120)

    assert resumed.returncode == 0, resumed.stderr
    assert all((root / f"{i}.jpg").read_bytes() == body for i, body in bodies.items())
    assert files_below(root) == {f"{i}.jpg" for i in bodies} | {f"splits/{MAKE}", "fetch-manifest.jsonl"}
    assert server.requests == Counter({f"/p/{i}.jpg": 2 if i in in_flight else 1 for i in bodies})  # only the cut-off ones again
    assert "4 already present, 12 downloaded, 0 missing" in resumed.stdout

    before = Counter(server.requests)
    third = run_bench(tmp_path / "home", *command, timeout=120)

    assert third.returncode == 0, third.stderr
    assert server.requests == before  # nothing requested at all
    assert "16 already present, 0 downloaded, 0 missing" in third.stdout


def test_ctrl_c_says_how_many_photos_are_on_disk(server: Server, tmp_path: Path, hub_cache: None) -> None:
    bodies, quick, root, command = held_fetch(server, tmp_path)
    process = start_until_held(tmp_path, root, command, len(quick))
    process.send_signal(signal.SIGINT)
    server.gate.set()  # the held bodies finish arriving while the workers are being stopped
    _, err = process.communicate(timeout=60)

    saved = {int(path.stem) for path in root.glob("*.jpg")}
    assert process.returncode == 130, err
    assert f"interrupted: the {len(saved)} photos this fetch saved are kept" in err, err
    assert quick <= saved and all((root / f"{i}.jpg").read_bytes() == bodies[i] for i in saved)
    assert not list((root / ".fetch-partial").glob("*.part"))


@pytest.mark.parametrize("options, expected", [
    (("--workers", "0"), "--workers 0: must be at least 1"),
    (("--workers", "many"), "--workers 'many': not a whole number"),
    (("--retries", "-1"), "--retries -1: must be at least 0"),
    (("--timeout", "0"), "--timeout '0': give a number of seconds above 0"),
    (("--attributes", "Make,Maek"), "unknown attribute 'Maek' (did you mean 'Make'?); FlickrExif has Aperture, Exposure, Flash"),
    (("--source", "./no-such-copy"), "--source ./no-such-copy: no such folder"),
])
def test_bad_options_end_in_one_line(options: tuple[str, ...], expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "flickrexif"
    (root / "splits").mkdir(parents=True)
    (root / "splits" / MAKE).write_bytes(split_file([5], [], [], "Make"))

    code = main(["--home", str(tmp_path / "home"), "fetch", "flickrexif", "--root", str(root), "--attributes", "Make", *options])

    error = capsys.readouterr().err
    assert code == 2 and expected in error and len(error.strip().splitlines()) == 1, error
    assert not (root / "5.jpg").exists()


def test_bad_dataset_root_or_lock_end_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from filelock import FileLock

    a_file = tmp_path / "photos.txt"
    a_file.write_text("not a folder")
    root = tmp_path / "busy"
    root.mkdir()
    cases = [(["fetch", "imagenet", "--root", str(root)], "bench downloads only flickrexif"),
             (["fetch", "flickrexif"], "fetch needs --root DIR"),
             (["fetch", "flickrexif", "--root", str(a_file)], f"--root {a_file} is a file, not a folder")]
    with FileLock(str(root / ".fetch.lock")):
        cases.append((["fetch", "flickrexif", "--root", str(root)], "another fetch is writing into"))
        for arguments, expected in cases:
            code = main(["--home", str(tmp_path / "home"), *arguments])
            error = capsys.readouterr().err
            assert code == 2 and expected in error and len(error.strip().splitlines()) == 1, (arguments, error)
    assert a_file.read_text() == "not a folder"


def test_table_without_url_column_is_refused(tmp_path: Path, hub_cache: None) -> None:
    source = tmp_path / "not-flickrexif"
    (source / "data").mkdir(parents=True)
    table = pa.table({"Flickr ID": pa.array([5], pa.int64()), "link": ["http://127.0.0.1:9/5.jpg"]})
    pq.write_table(table, source / "data" / "train-00000-of-00001.parquet")
    root = tmp_path / "flickrexif"
    (root / "splits").mkdir(parents=True)
    (root / "splits" / MAKE).write_bytes(split_file([5], [], [], "Make"))

    result = run_bench(tmp_path / "home", "fetch", "flickrexif", "--root", str(root), "--source", str(source),
                       "--attributes", "Make", timeout=60)

    assert result.returncode == 2, result.stderr
    error = [line for line in result.stderr.splitlines() if "Generating train split" not in line and line.strip()]
    assert len(error) == 1 and "cannot read the columns 'Flickr ID' and 'url'" in error[0], result.stderr
    assert "Traceback" not in result.stderr


def test_without_datasets_installed_fetch_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "datasets.py").write_text("raise ImportError('datasets is hidden for this test')\n")
    monkeypatch.setenv("PYTHONPATH", str(shadow))

    result = run_bench(tmp_path / "home", "fetch", "flickrexif", "--root", str(tmp_path / "flickrexif"), timeout=60)

    assert result.returncode == 2 and 'pip install -e ".[hf]"' in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "flickrexif" / "splits").exists()
