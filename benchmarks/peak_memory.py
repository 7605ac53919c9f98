"""Peak memory of a command and everything it starts, summed over its processes.

    python benchmarks/peak_memory.py -- .venv/bin/course demo

Samples every process descended from the command twice a second and reports the peak of their summed
proportional set size (PSS: a page shared by N processes counts 1/N to each, so forked grading kernels
that share torch with their zygote are not counted N times) and the peak count of processes. This is
what the machine must hold, which `/usr/bin/time -v` does not give (it reports the largest single process).
Linux only; run as root to see the sandboxed kernels' memory too.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return found


def descendants(pid: int) -> list[int]:
    todo, seen = [pid], []
    while todo:
        current = todo.pop()
        seen.append(current)
        todo += children(current)
    return seen


def pss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def main() -> int:
    command = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else sys.argv[1:]
    if not command:
        print(__doc__)
        return 2
    start = time.monotonic()
    process = subprocess.Popen(command)
    peak_kib, peak_count, peak_at = 0, 0, 0.0
    while process.poll() is None:
        pids = descendants(process.pid)
        total = sum(pss_kib(p) for p in pids)
        if total > peak_kib:
            peak_kib, peak_at = total, time.monotonic() - start
        peak_count = max(peak_count, len(pids))
        time.sleep(0.5)
    print(f"\npeak memory: {peak_kib / 2**20:.2f} GiB summed PSS over the command's processes "
          f"(at {peak_at:.0f} s of {time.monotonic() - start:.0f} s); at most {peak_count} processes; "
          f"exit status {process.returncode}")
    return process.returncode


if __name__ == "__main__":
    sys.exit(main())
