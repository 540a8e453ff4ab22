"""Peak resident memory from /proc (Linux), shared by the benchmarks that print it."""

from __future__ import annotations

from pathlib import Path


def reset_peak_rss() -> bool:
    """Reset the process's ``VmHWM`` (``/proc/self/clear_refs``); False where that is impossible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def status_mib(field: str) -> float | None:
    """``VmRSS`` (resident now) or ``VmHWM`` (peak resident) from /proc, in MiB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None
