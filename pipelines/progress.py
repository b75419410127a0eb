"""Progress of long steps (training, evaluation, benchmarks): a bar on a terminal, a line in a log.

A bar (tqdm) is drawn only when stderr is a terminal, and disappears when its step ends; redirected
to a file or a pipe, nothing is written per image. Either way, unless `quiet`, every step ends with
one summary line on stderr, such as `tiles: embed: 180 images in 12.3 s`.
"""

from __future__ import annotations

import sys
import time
from typing import Iterable, Iterator, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def on_terminal(stream=None) -> bool:
    """Whether `stream` (default: stderr) is an interactive terminal."""
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream is not None and stream.isatty())
    except (AttributeError, ValueError):  # closed or replaced streams
        return False


class Step:
    """One step of work: `with Step("tiles: embed", total=180, unit="image") as step: ... step.update()`.

    `unit` is singular; the summary line says how many, in how long, and `detail` if it was set.
    """

    def __init__(self, description: str, total: int | None = None, unit: str = "item", quiet: bool = False):
        self.description = description
        self.total = total
        self.unit = unit
        self.quiet = quiet
        self.count = 0
        self.detail = ""
        self._bar = None

    def __enter__(self) -> "Step":
        self.started = time.perf_counter()
        self._bar = tqdm(total=self.total, desc=self.description, unit=self.unit, leave=False,
                         disable=self.quiet or not on_terminal())
        return self

    def update(self, count: int = 1) -> None:
        self.count += count
        self._bar.update(count)

    def __exit__(self, exc_type, exc, traceback) -> None:
        self._bar.close()
        if self.quiet or exc_type is not None:
            return
        seconds = time.perf_counter() - self.started
        noun = self.unit if self.count == 1 else _plural(self.unit)
        extra = f" ({self.detail})" if self.detail else ""
        line = f"{self.description}: {self.count} {noun} in {seconds:.1f} s{extra}"
        if on_terminal():
            tqdm.write(line, file=sys.stderr)  # above any bar still running, which is drawn again below it
        else:
            print(line, file=sys.stderr, flush=True)


def progress(items: Iterable[T], description: str, total: int | None = None, unit: str = "item",
             quiet: bool = False) -> Iterator[T]:
    """`items`, one at a time, as one `Step`."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)
    with Step(description, total, unit, quiet) as step:
        for item in items:
            yield item
            step.update()


def _plural(unit: str) -> str:
    return unit if unit.endswith("s") else unit[:-1] + "ies" if unit.endswith("y") else unit + "es" if unit.endswith(("ch", "sh")) else unit + "s"
