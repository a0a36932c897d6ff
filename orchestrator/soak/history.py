"""The soak's history: one JSON object per line, appended as things happen (and flushed, so a killed
soak leaves a readable history). Every record has `t` (unix time) and `type`."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any


class History:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = path.open("a")

    def add(self, type_: str, **fields: Any) -> dict[str, Any]:
        record = {"t": round(time.time(), 3), "type": type_, **fields}
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        return record

    def close(self) -> None:
        self._file.close()


def read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
