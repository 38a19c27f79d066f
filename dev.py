#!/usr/bin/env python3
"""The project's two commands, each doing its own set-up on a machine with Python 3.10+.

    python3 dev.py run     run the real handler on events/*.json against the local emulator
    python3 dev.py test    lint, type-check, run the test suite and a short fault soak

Both create ``.venv`` beside this file on first use and install the pinned
requirements into it (again only when a requirements file changes). Set
``DEV_VENV`` to use another directory, for example one per Python version.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / os.environ.get("DEV_VENV", ".venv")
REQUIREMENTS = ("requirements.txt", "requirements-dev.txt")


def main(argv: list[str]) -> int:
    if sys.version_info < (3, 10):  # noqa: UP036 - dev.py runs on whatever python3 is at hand
        print("collector-reinstall needs Python 3.10 or newer", file=sys.stderr)
        return 2
    if len(argv) < 1 or argv[0] not in COMMANDS:
        print(__doc__, file=sys.stderr)
        return 2
    python = _environment()
    return COMMANDS[argv[0]](python, argv[1:])


def run(python: Path, extra: list[str]) -> int:
    """The main job: every sample event through the handler, against the emulator."""
    return _call([python, "scripts/demo.py", *extra])


def test(python: Path, extra: list[str]) -> int:
    """Lint, format check, type check, the tests, then a short soak."""
    steps = [
        [python, "-m", "ruff", "check", "."],
        [python, "-m", "ruff", "format", "--check", "."],
        [python, "-m", "mypy"],
        [python, "-m", "pytest", *extra],
        # A short fault soak: every event reinstalled exactly once, none lost.
        [python, "scripts/soak.py", "--events", "300"],
    ]
    for step in steps:
        status = _call(step)
        if status != 0:
            return status
    return 0


COMMANDS = {"run": run, "test": test}


def _environment() -> Path:
    """Create ``.venv`` and install the pinned requirements if they changed."""
    python = VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    stamp = VENV / "requirements.sha256"
    digest = hashlib.sha256(b"".join((ROOT / name).read_bytes() for name in REQUIREMENTS))
    if python.exists() and stamp.exists() and stamp.read_text() == digest.hexdigest():
        return python
    if not python.exists():
        print(f"creating {VENV.name} with Python {sys.version.split()[0]}", file=sys.stderr)
        venv.EnvBuilder(with_pip=True).create(VENV)
    pip = [python, "-m", "pip", "--disable-pip-version-check", "install", "--quiet"]
    if _call([*pip, "--upgrade", "pip", "wheel"]) or _call([*pip, "-r", REQUIREMENTS[1]]):
        raise SystemExit("installing the requirements failed; see pip's output above")
    stamp.write_text(digest.hexdigest())
    return python


def _call(command: list[object]) -> int:
    print("+", " ".join(str(part) for part in command), file=sys.stderr, flush=True)
    return subprocess.call([str(part) for part in command], cwd=ROOT)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
