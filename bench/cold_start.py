"""Cold start: importing app.py in fresh processes against importing chalice + boto3 + pydantic alone.

Heavy libraries (slack_sdk, cryptography, pandas, the disposable-domain list) must load only in the
handlers that use them; this measures that the API Lambda's import stays near the floor. It also
builds the package (`make package` into a temporary directory, ~10 s) and reports the size of the
app's deployment.zip, which holds app.py and chalicelib/ only (dependencies ship in a layer).

    .venv/bin/python bench/cold_start.py [--runs 15] [--no-package]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FLOOR = "import chalice, boto3, pydantic"
APP = "import app"
TIMER = "import time; t = time.perf_counter(); {code}; print((time.perf_counter() - t) * 1000)"


def once(code: str) -> float:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "0"}
    out = subprocess.run([sys.executable, "-c", TIMER.format(code=code)], cwd=ROOT, env=env, check=True,
                         capture_output=True, text=True).stdout
    return float(out.strip().splitlines()[-1])


def package_size() -> tuple[int, int]:
    """(bytes, files) of the app's deployment.zip, built by `make package` into a temporary directory."""
    venv = Path(sys.prefix)
    with tempfile.TemporaryDirectory() as out:
        subprocess.run(["make", "--no-print-directory", "-o", str(venv / ".baton-installed"), "package",
                        f"VENV={venv}", f"BUILD={out}"], cwd=ROOT, check=True, capture_output=True)
        zipped = Path(out) / "app" / "deployment.zip"
        with zipfile.ZipFile(zipped) as archive:
            return zipped.stat().st_size, len(archive.namelist())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--no-package", action="store_true", help="skip building the package")
    args = parser.parse_args()
    once(APP)  # warm the bytecode caches, as a deployed package has them
    once(FLOOR)
    app_ms: list[float] = []
    floor_ms: list[float] = []
    for _ in range(args.runs):  # interleaved, so machine noise hits both alike
        app_ms.append(once(APP))
        floor_ms.append(once(FLOOR))
    app_median, floor_median = statistics.median(app_ms), statistics.median(floor_ms)
    heavy = subprocess.run(
        [sys.executable, "-c", "import sys, app; print(','.join(m for m in ('slack_sdk', 'cryptography', 'pandas',"
         " 'disposable_email_domains', 'yaml', 'email_validator') if m in sys.modules))"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout.strip()
    print(f"import app.py: median {app_median:.1f} ms over {args.runs} fresh processes")
    print(f"import chalice + boto3 + pydantic: median {floor_median:.1f} ms")
    print(f"ratio {app_median / floor_median:.2f} (target <= 1.25); heavy modules loaded by app.py: {heavy or 'none'}")
    figures = {"app_import_ms": round(app_median, 1), "floor_ms": round(floor_median, 1),
               "ratio": round(app_median / floor_median, 3), "runs": args.runs}
    if not args.no_package:
        size, files = package_size()
        print(f"deployment.zip: {size / 1024:.0f} KB, {files} files (app.py + chalicelib; dependencies in a layer)")
        figures |= {"zip_bytes": size, "zip_files": files}
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
