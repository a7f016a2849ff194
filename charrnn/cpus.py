"""How many cores this process may run on."""

from __future__ import annotations

import os


def cpu_count() -> int:
    """Cores in this process's affinity mask (what taskset or a container allows), at least 1."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1
