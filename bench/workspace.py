"""Where embeddings and results live: a workspace root (--home / BENCH_HOME / cwd). Vector indexes
for interactive queries live inside the embedding tables (`python -m bench vector-index build`)."""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.errors import UsageError

RESERVED = ("results", "superseded", "rejects")  # folders of reports/ that belong to the store of cells
NAME_BYTES = 255  # the longest file name most file systems accept


class OutsideHomeError(UsageError):
    """A write would land outside the home, through a symbolic link that leaves it."""


def inside(root: Path, target: Path) -> Path:
    """`target` when it, and every folder on the way to it, stays inside the home `root` once links
    are followed (a dangling link counts as where it points): nothing is written elsewhere."""
    landing = Path(os.path.realpath(target))
    if not landing.is_relative_to(os.path.realpath(root)):
        raise OutsideHomeError(f"{target}: is or passes through a symbolic link that leaves the home {root} (it leads to {landing}); "
                               "remove the link, or choose another --home")
    return target


def links_leaving(root: Path, folder: Path) -> list[Path]:
    """The symbolic links under `folder` (not followed) that lead outside the home `root`."""
    found: list[Path] = []
    pending = [folder]
    while pending:
        try:
            entries = list(os.scandir(pending.pop()))
        except OSError:
            continue
        for entry in entries:
            if entry.is_symlink():
                if not Path(os.path.realpath(entry.path)).is_relative_to(os.path.realpath(root)):
                    found.append(Path(entry.path))
            elif entry.is_dir(follow_symlinks=False):
                pending.append(Path(entry.path))
    return found


def check_report_name(name: str) -> None:
    """A report is a folder under reports/ named by one plain name that the store does not use."""
    if not name or name in (".", "..") or any(separator in name for separator in ("/", "\\", os.sep)) or name.startswith("~") or "\0" in name:
        raise UsageError(f"--name {name[:80]!r}: a report name is one folder name under the home's reports/ (e.g. --name cifar); "
                         "it may not hold a path separator or be . or ..")
    if name in RESERVED:
        raise UsageError(f"--name {name}: reports/{name}/ holds the store's own files ({', '.join(RESERVED)} are taken); choose another name")
    if len(name.encode("utf-8", "surrogateescape")) > NAME_BYTES:
        raise UsageError(f"--name {name[:40]}…: {len(name.encode('utf-8', 'surrogateescape'))} bytes; a report name may have at most {NAME_BYTES}")


@dataclass(frozen=True)
class Workspace:
    root: Path
    embeddings_uri: str  # any LanceDB URI; a folder under root by default

    @classmethod
    def at(cls, home: str | Path | None = None) -> "Workspace":
        root = Path(home or os.environ.get("BENCH_HOME") or Path.cwd()).expanduser().resolve()
        uri = os.environ.get("BENCH_EMBEDDINGS_URI") or str(root / "embeddings")
        return cls(root=root, embeddings_uri=uri)

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def results(self) -> Path:
        return self.reports / "results"

    @property
    def superseded(self) -> Path:
        """Where a cell goes when it is recomputed because one of its inputs changed."""
        return self.reports / "superseded"

    @property
    def rejects(self) -> Path:
        return self.reports / "rejects"

    def report(self, name: str) -> Path:
        """The folder of the report `name`, refused before any work if the name is not one plain
        free name or the folder holds a link leading outside the home."""
        check_report_name(name)
        folder = self.reports / name
        self.guard(folder)
        return folder

    def guard(self, *folders: Path) -> None:
        """Refuse, before any work, folders to be written that are, pass through or hold a link
        leaving the home (a store elsewhere is named with BENCH_EMBEDDINGS_URI, not a link)."""
        for folder in folders:
            inside(self.root, folder)
            leaving = links_leaving(self.root, folder)
            if leaving:
                raise OutsideHomeError(f"{leaving[0]}: a symbolic link leading outside the home {self.root} "
                                       f"(to {os.path.realpath(leaving[0])}); bench writes only inside the home: remove the link")

    def ensure_readable(self) -> None:
        """A home that is a file is refused (reading it would find nothing and say so as if it were empty)."""
        if self.root.exists() and not self.root.is_dir():
            raise UsageError(f"--home {self.root}: is a file, not a folder; choose a folder (--home DIR or BENCH_HOME)")

    def ensure_writable(self) -> None:
        """Fail before any work, with the fix, if results or embeddings could not be written here.
        Checks by writing a scratch folder into the nearest existing ancestor and removing it, so
        nothing is left behind either way; the folders bench writes must stay inside the home."""
        places = [("--home", self.root, "choose a folder (--home DIR or BENCH_HOME)")]
        if "://" not in self.embeddings_uri:
            places.append(("BENCH_EMBEDDINGS_URI", Path(self.embeddings_uri), "set BENCH_EMBEDDINGS_URI to a folder, or unset it"))
        for option, path, fix in places:
            existing = path
            while not existing.exists() and existing != existing.parent:
                existing = existing.parent
            if not existing.is_dir():
                what = "a file where the store's folder should be" if option == "BENCH_EMBEDDINGS_URI" else "a file, not a folder"
                raise UsageError(f"{option} {path}: {existing} is {what}; {fix}")
            try:
                shutil.rmtree(tempfile.mkdtemp(prefix=".bench-write-check-", dir=existing))
            except OSError as error:
                raise UsageError(f"{option} {path}: cannot write in {existing} ({error.strerror or error}); {fix}") from None
        owned = [self.results, self.superseded, self.rejects]
        if self.embeddings_uri == str(self.root / "embeddings"):
            owned.append(Path(self.embeddings_uri))
        self.guard(*owned)
