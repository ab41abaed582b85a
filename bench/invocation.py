"""The command the user typed, so that a message suggesting a fix names a command that runs: the
user's own options (home, encoders file, dataset, folder, attribute, precision…), changed only
where the fix changes them. The command line makes one and words its errors' fixes with it
(bench.cli_fixes); nothing below the command line sees it."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Iterable, Mapping

PROGRAM = "python -m bench"
# Options that say where and on what a command works; a suggested command of another verb keeps them.
CONTEXT = ("--home", "--encoders-file", "--dataset", "--root", "--attribute")
ALIASES = {"--encoder": "--encoders"}  # spellings of one option


@dataclass(frozen=True)
class Invocation:
    arguments: tuple[str, ...] = ()  # what followed `python -m bench`
    switches: frozenset[str] = frozenset()  # options that take no value

    def _words(self) -> list[tuple[str, str | None]]:
        """(option, value) pairs and (word, None) for switches and positional words, in order."""
        out: list[tuple[str, str | None]] = []
        tokens = list(self.arguments)
        index = 0
        while index < len(tokens):
            token = tokens[index]
            if token.startswith("--") and "=" in token:
                flag, value = token.split("=", 1)
                out.append((ALIASES.get(flag, flag), value))
            elif token.startswith("--") and token not in self.switches and index + 1 < len(tokens):
                out.append((ALIASES.get(token, token), tokens[index + 1]))
                index += 1
            else:
                out.append((ALIASES.get(token, token), None))
            index += 1
        return out

    def value(self, flag: str) -> str | None:
        """The value the user gave `flag` (the last one), or None."""
        found = [value for name, value in self._words() if name == ALIASES.get(flag, flag) and value is not None]
        return found[-1] if found else None

    def rerun(self, values: Mapping[str, str] | None = None, add: Iterable[str] = ()) -> str:
        """The user's command with the options in `values` set to those values and the switches in
        `add` present."""
        changed = {ALIASES.get(flag, flag): value for flag, value in (values or {}).items()}
        words: list[str] = []
        present: set[str] = set()
        for flag, value in self._words():
            present.add(flag)
            if flag not in changed:
                words += [flag] if value is None else [flag, value]
        for flag, value in changed.items():
            words += [flag, value]
        words += [switch for switch in add if switch not in present]
        return _command(words)

    @property
    def verb(self) -> str | None:
        """The verb the user ran (run, extract, query, …)."""
        return next((word for word, value in self._words() if value is None and not word.startswith("-")), None)

    def rebuild(self, encoder: str) -> str:
        """The command that rebuilds one encoder's table: the user's own with --rebuild where it
        takes one, else an extraction with the user's dataset options."""
        if self.verb in ("run", "extract"):
            return self.rerun({"--encoders": encoder}, add=("--rebuild",))
        return self.command("extract", "--encoders", encoder, "--rebuild")

    def command(self, verb: str, *words: str) -> str:
        """`verb` with `words`, keeping the user's context options (home, encoders file, dataset…)."""
        context: list[str] = []
        for flag in CONTEXT:
            value = self.value(flag)
            if value is not None and flag not in words:
                context += [flag, value]
        return _command([verb, *words, *context])


def _command(words: list[str]) -> str:
    return f"{PROGRAM} {shlex.join(words)}"
