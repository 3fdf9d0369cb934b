"""Run every benchmark in this folder (``make bench``), each in its own process.

python -m benchmarks            # all, full size
python -m benchmarks --quick    # all, small sizes
python -m benchmarks pivots     # only benchmarks whose name contains "pivots"
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def main() -> int:
    args = sys.argv[1:]
    flags = [a for a in args if a.startswith("-")]
    names = [a for a in args if not a.startswith("-")]
    here = Path(__file__).parent
    failed: list[str] = []
    for path in sorted(here.glob("bench_*.py")):
        module = path.stem
        if names and not any(n in module for n in names):
            continue
        print(f"\n=== {module} ===", flush=True)
        rc = subprocess.call([sys.executable, "-m", f"benchmarks.{module}", *flags])
        if rc:
            failed.append(module)
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
