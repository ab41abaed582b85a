"""The one walker for image files on disk, shared by every folder-based dataset."""

from __future__ import annotations

from pathlib import Path

IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".heic", ".heif"}
)


def image_files(folder: Path) -> list[Path]:
    """Image files (by extension) below `folder`, sorted by POSIX relative path; hidden files
    and folders are skipped."""
    found = []
    for path in folder.rglob("*"):
        relative = path.relative_to(folder)
        if path.suffix.lower() in IMAGE_SUFFIXES and not any(part.startswith(".") for part in relative.parts) and path.is_file():
            found.append((relative.as_posix(), path))
    return [path for _, path in sorted(found)]
