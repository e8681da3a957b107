"""A progress bar on the terminal for long stages, silent when output is not a terminal.

Prefect's logs and artifacts carry the record; the bar is only for the person
watching, so under CI, pipes or a Prefect worker it draws nothing.
"""

from __future__ import annotations

import sys
from typing import Any

from tqdm import tqdm


class ProgressBar:
    def __init__(self, total: int, unit: str, enabled: bool) -> None:
        self._bar = tqdm(total=total, unit=unit, disable=not enabled, file=sys.stderr, dynamic_ncols=True, leave=False)

    def advance_to(self, done: int, **fields: Any) -> None:
        self._bar.update(max(0, done - self._bar.n))
        if fields:
            self._bar.set_postfix({k: f"{v:,.4g}" if isinstance(v, float) else v for k, v in fields.items()})

    def close(self) -> None:
        self._bar.close()


def progress_bar(total: int, unit: str = "step") -> ProgressBar:
    return ProgressBar(total, unit, enabled=sys.stderr.isatty())
