"""Many URLs to files, in parallel threads: a file appears under its final name only once its
body is complete and a check has accepted it, so a killed run never leaves a partial file where
a finished one belongs."""

from __future__ import annotations

import os
import threading
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

USER_AGENT = "bench-fetch/0.1 (research benchmark; python-urllib)"
CHUNK_BYTES = 1 << 16
QUEUED_PER_WORKER = 4  # downloads waiting per thread: enough to keep threads busy, few enough to hold in memory
RETRIED_STATUSES = frozenset({408, 429})  # plus every 5xx: the server may answer next time


@dataclass(frozen=True)
class DownloadSettings:
    workers: int = 16
    retries: int = 3  # tries after the first, for failures that may pass (5xx, timeouts, dropped connections)
    timeout: float = 30.0  # seconds a request may go without receiving anything
    backoff: float = 1.0  # seconds before the first retry; doubles before each next one


@dataclass(frozen=True)
class Download:
    url: str
    target: Path  # the final name; unique within one run


@dataclass(frozen=True)
class Failure:
    reason: str  # short and countable: "404", "http 500 after 4 tries", "timeout", "truncated", "not an image"
    detail: str  # the whole story, for the manifest


@dataclass(frozen=True)
class Outcome:
    download: Download
    failure: Failure | None = None  # None: the file is at download.target


Check = Callable[[Path, str], "Failure | None"]  # (complete body on disk, URL after redirects) -> why it is refused


class _Retry(Exception):
    """A failure that may pass if the request is sent again."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason, self.detail = reason, detail


class _Refused(Exception):
    """A failure that another try would repeat."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.detail)
        self.failure = failure


class _Stopped(Exception):
    """The run is being interrupted; the partial body is dropped."""


def fetch_one(download: Download, settings: DownloadSettings, check: Check, scratch: Path,
              stop: threading.Event | None = None) -> Outcome:
    """Download one URL to its target through a scratch file, retrying transient failures with
    exponential backoff; the target is written only by an atomic rename of an accepted body."""
    stop = stop or threading.Event()
    scratch.mkdir(parents=True, exist_ok=True)
    partial = scratch / f"{download.target.name}.part"
    tries = settings.retries + 1
    last: _Retry | None = None
    for attempt in range(tries):
        if attempt:
            stop.wait(settings.backoff * 2 ** (attempt - 1))
        if stop.is_set():
            return Outcome(download, Failure("interrupted", "the run was interrupted before this file was complete"))
        try:
            _attempt(download, settings, check, partial, stop)
            return Outcome(download)
        except _Retry as problem:
            last = problem
        except _Refused as problem:
            return Outcome(download, problem.failure)
        except _Stopped:
            return Outcome(download, Failure("interrupted", "the run was interrupted before this file was complete"))
        finally:
            partial.unlink(missing_ok=True)
    assert last is not None
    counted = f"{tries} {'try' if tries == 1 else 'tries'}"
    reason = f"{last.reason} after {counted}" if last.reason.startswith("http ") else last.reason
    return Outcome(download, Failure(reason, f"{last.detail} ({counted})"))


def fetch_all(downloads: Iterable[Download], settings: DownloadSettings, check: Check, scratch: Path) -> Iterator[Outcome]:
    """Outcomes of all downloads, in the order they finish, from `settings.workers` threads.
    Closing the iterator early (or Ctrl-C while it runs) stops the threads between chunks and
    drops their partial files."""
    stop = threading.Event()
    pending: set[Future[Outcome]] = set()
    with ThreadPoolExecutor(max_workers=settings.workers, thread_name_prefix="download") as pool:
        try:
            for download in downloads:
                pending.add(pool.submit(fetch_one, download, settings, check, scratch, stop))
                if len(pending) >= settings.workers * QUEUED_PER_WORKER:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    yield from (future.result() for future in done)
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                yield from (future.result() for future in done)
        finally:
            stop.set()
            for future in pending:
                future.cancel()


def _attempt(download: Download, settings: DownloadSettings, check: Check, partial: Path, stop: threading.Event) -> None:
    import http.client  # the HTTP stack loads when a download starts, not with every command's parser
    import urllib.error
    import urllib.request

    scheme = download.url.partition(":")[0].lower() if ":" in download.url else ""
    if scheme not in ("http", "https"):  # never a local file (file:), never a retry for a scheme no server speaks
        raise _Refused(Failure("unsupported URL", f"only http and https URLs are fetched, not {scheme or 'a URL without a scheme'}"))
    request = urllib.request.Request(download.url, headers={"User-Agent": USER_AGENT})
    try:
        response = urllib.request.urlopen(request, timeout=settings.timeout)
    except urllib.error.HTTPError as error:
        error.close()
        if error.code >= 500 or error.code in RETRIED_STATUSES:
            raise _Retry(f"http {error.code}", f"the server answered {error.code} {error.reason}") from None
        raise _Refused(Failure(str(error.code), f"the server answered {error.code} {error.reason}")) from None
    except urllib.error.URLError as error:
        raise _connection_failure(error.reason, settings) from None
    except ValueError as error:  # no scheme, or one urllib does not speak
        raise _Refused(Failure("bad URL", f"cannot request this URL: {error}")) from None
    except (OSError, http.client.HTTPException) as error:
        raise _connection_failure(error, settings) from None
    with response:
        expected = _content_length(response.headers.get("Content-Length"))
        received = 0
        with open(partial, "wb") as handle:  # a local disk error propagates: it is not the server's
            while chunk := _read(response, received, expected, settings):
                handle.write(chunk)
                received += len(chunk)
                if stop.is_set():
                    raise _Stopped
            handle.flush()
            os.fsync(handle.fileno())
        final_url = response.geturl()
    if expected is not None and received < expected:
        raise _Retry("truncated", f"the body has {received} bytes but Content-Length promised {expected}")
    refusal = check(partial, final_url)
    if refusal is not None:
        raise _Refused(refusal)
    os.replace(partial, download.target)


def _read(response, received: int, expected: int | None, settings: DownloadSettings) -> bytes:
    """What has arrived of the body, up to a chunk (b"" at its end), with network failures sorted into retries."""
    import http.client

    try:
        return response.read1(CHUNK_BYTES)  # read1: no waiting for a full chunk, so partial bodies reach the disk
    except http.client.IncompleteRead as error:
        got = received + len(error.partial)
        promised = f"the {expected} promised" if expected is not None else "the promised length"
        raise _Retry("truncated", f"the connection closed after {got} bytes, short of {promised}") from None
    except (OSError, http.client.HTTPException) as error:
        raise _connection_failure(error, settings) from None


def _connection_failure(error: object, settings: DownloadSettings) -> Exception:
    if isinstance(error, TimeoutError):
        return _Retry("timeout", f"nothing received for {settings.timeout:g} s")
    if isinstance(error, FileNotFoundError):  # a file:// URL naming a missing file
        return _Refused(Failure("404", f"no such file: {error.filename or error}"))
    return _Retry("connection error", f"the connection failed: {error}")


def _content_length(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None
