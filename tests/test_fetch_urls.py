"""fetch opens http and https URLs only: a local file, another scheme or a URL that does not parse
is one row of the manifest, and the rest of the fetch goes on."""

from __future__ import annotations

from pathlib import Path

from bench import __main__ as cli
from tests.test_fetch import MAKE, QUICK, files_below, hub_cache, manifest, split_file, write_table  # noqa: F401  (hub_cache: a fixture)

REFUSED = {
    1: "file:///etc/passwd",
    2: "javascript:alert(1)",
    3: "http://[::1",
    4: "ftp://127.0.0.1/4.jpg",
    5: "http:///no-host.jpg",
    6: "127.0.0.1/6.jpg",
}


def test_only_http_urls_are_fetched_and_others_are_manifest_rows(tmp_path: Path, hub_cache: None, capsys) -> None:
    secret = tmp_path / "secret.jpg"
    secret.write_bytes(b"\xff\xd8\xff private bytes")
    urls: dict[int, str | None] = {**REFUSED, 7: secret.as_uri()}
    source = write_table(tmp_path / "hub-copy", urls)
    root = tmp_path / "flickrexif"
    (root / "splits").mkdir(parents=True)
    (root / "splits" / MAKE).write_bytes(split_file(sorted(urls), [], [], "Make"))

    code = cli.main(["--home", str(tmp_path / "home"), "fetch", "flickrexif", "--root", str(root), "--source", str(source),
                     "--attributes", "Make", *QUICK])

    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "Traceback" not in captured.err
    rows = manifest(root)
    assert set(rows) == set(urls)
    assert {row["reason"] for row in rows.values()} == {"unsupported URL"}
    assert all("private bytes" not in str(row) for row in rows.values())
    assert files_below(root) == {f"splits/{MAKE}", "fetch-manifest.jsonl"}  # nothing saved as a photo
