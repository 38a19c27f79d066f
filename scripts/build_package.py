#!/usr/bin/env python3
"""Build the code package that ``s deploy`` uploads: ``src/`` plus the pinned requirements.

    python3 scripts/build_package.py                       # build/package, for python3.10 on FC
    python3 scripts/build_package.py --for-this-interpreter --output /tmp/package

By default the package is built for Function Compute's ``python3.10`` runtime (CPython
3.10, x86_64 Linux) whatever Python and machine run this script: pip picks the wheels
for that target instead of the running interpreter's. Three steps:

1. ``pip download --no-deps`` every pinned requirement for the target. Where a
   project publishes no wheel (``aliyun-fc2`` and ``alibabacloud-tea`` ship only
   sdists) the sdist comes down instead.
2. ``pip wheel`` each of those sdists. Cross-building is only sound for pure Python,
   so a wheel that comes out tied to this machine's interpreter stops the build.
3. ``pip install --target --no-index --only-binary=:all:`` from those two folders
   alone: a requirement missing from ``requirements.txt`` fails here, not on FC.

Then ``src/`` is copied in, and the code is byte-compiled when the running
interpreter is the target's own version (FC's code directory is read-only, so
bytecode shipped in the package is the only bytecode an instance gets).
"""

from __future__ import annotations

import argparse
import compileall
import os
import py_compile
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = ROOT / "build" / "package"
DEFAULT_PYTHON_VERSION = "3.10"
DEFAULT_PLATFORMS = ("manylinux2014_x86_64",)
#: Left in every package this script builds, so that a rebuild only ever clears one of its own.
MARKER = ".collector-reinstall-package"


class BuildError(Exception):
    """The package cannot be built as asked; the message says why."""


def main(argv: Sequence[str] | None = None) -> int:
    options = _parse_arguments(argv)
    target = (
        None
        if options.for_this_interpreter
        else Target(
            options.python_version or DEFAULT_PYTHON_VERSION,
            tuple(options.platform or DEFAULT_PLATFORMS),
        )
    )
    try:
        build(options.output, target, requirements=options.requirements)
        if options.zip is not None:
            zip_package(options.output, options.zip)
    except BuildError as error:
        print(f"build_package: {error}", file=sys.stderr)
        return 1
    return 0


@dataclass(frozen=True)
class Target:
    """The interpreter and platforms a package is for, as pip's cross-install flags."""

    python_version: str
    platforms: tuple[str, ...]

    def pip_flags(self) -> list[str]:
        flags = ["--python-version", self.python_version, "--implementation", "cp"]
        for platform in self.platforms:
            flags += ["--platform", platform]
        return flags

    def is_running_interpreter(self) -> bool:
        return self.python_version == "{}.{}".format(*sys.version_info[:2])

    def __str__(self) -> str:
        return f"CPython {self.python_version} on {', '.join(self.platforms)}"


def build(output: Path, target: Target | None, *, requirements: Path | None = None) -> None:
    """Build the package into ``output``; ``target`` None means this interpreter."""
    requirements = requirements or ROOT / "requirements.txt"
    _clear(output)
    target_flags = target.pip_flags() if target else []
    with tempfile.TemporaryDirectory(prefix="collector-reinstall-build-") as scratch:
        downloads = Path(scratch, "downloads")
        built = Path(scratch, "built")
        _pip("download", "--no-deps", "--dest", downloads, "-r", requirements, *target_flags)
        _build_sdists(downloads, built, cross=target is not None)
        _pip(
            "install",
            "--target",
            output,
            "--no-index",
            "--find-links",
            downloads,
            "--find-links",
            built,
            "--only-binary=:all:",
            "--no-compile",
            "-r",
            requirements,
            *target_flags,
        )
    # Console scripts carry this machine's interpreter path; nothing on FC runs them.
    shutil.rmtree(output / "bin", ignore_errors=True)
    shutil.copytree(
        ROOT / "src", output, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__")
    )
    if target is None or target.is_running_interpreter():
        _byte_compile(output)
    print(f"built {output} for {target or 'this interpreter'} ({_size_mb(output):.1f} MB)")


def zip_package(package: Path, archive: Path) -> None:
    """Write ``package`` as a zip with the code at its root, as FC expects it."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as bundle:
        for path in sorted(package.rglob("*")):
            if path.is_file() and path.name != MARKER:
                bundle.write(path, path.relative_to(package))
    print(f"wrote {archive} ({archive.stat().st_size / 1e6:.1f} MB)")


def _build_sdists(downloads: Path, built: Path, *, cross: bool) -> None:
    """Turn every downloaded sdist into a wheel; for another target, only pure Python."""
    built.mkdir()
    for sdist in sorted(downloads.iterdir()):
        if sdist.suffix == ".whl":
            continue
        _pip("wheel", "--no-deps", "--use-pep517", "--wheel-dir", built, _pinned_name(sdist))
    if not cross:
        return
    for wheel in sorted(built.glob("*.whl")):
        if not wheel.name.endswith("-none-any.whl"):
            raise BuildError(
                f"{wheel.name} is for this machine's interpreter only: the project publishes "
                "no wheel for the target and is not pure Python, so it cannot be cross-built"
            )


def _pinned_name(sdist: Path) -> str:
    """``aliyun-fc2-2.5.2.tar.gz`` -> ``aliyun-fc2==2.5.2``.

    The requirement, not the file, goes to ``pip wheel``: pip then finds the wheel it
    built last time in its cache instead of building again from a new temporary path.
    """
    stem = sdist.name.removesuffix(".tar.gz").removesuffix(".zip")
    name, _, version = stem.rpartition("-")
    if not name or not version:
        raise BuildError(f"cannot read a project name and version from {sdist.name}")
    return f"{name}=={version}"


def _clear(output: Path) -> None:
    """Empty ``output``, but only if it is missing, empty or an earlier package."""
    if output.exists() and any(output.iterdir()) and not (output / MARKER).exists():
        raise BuildError(f"{output} is not empty and not a package built here; not clearing it")
    shutil.rmtree(output, ignore_errors=True)
    output.mkdir(parents=True)
    (output / MARKER).write_text("built by scripts/build_package.py; cleared on rebuild\n")


def _byte_compile(package: Path) -> None:
    """Compile every module with hash-checked-off pycs: a zip upload does not keep
    the sources' modification times, which timestamp-checked pycs depend on."""
    compiled = compileall.compile_dir(
        package,
        quiet=1,
        workers=0,
        invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
    )
    if not compiled:
        raise BuildError(f"byte-compiling {package} failed; see the errors above")


def _pip(command: str, *arguments: object) -> None:
    pip = [sys.executable, "-m", "pip", command, "--disable-pip-version-check", "--quiet"]
    # An environment variable rather than the flag: a pip too old to know it ignores it.
    environment = {**os.environ, "PIP_ROOT_USER_ACTION": "ignore"}
    status = subprocess.call([*pip, *(str(argument) for argument in arguments)], env=environment)
    if status != 0:
        raise BuildError(f"pip {command} failed (exit {status}); see pip's output above")


def _size_mb(package: Path) -> float:
    return sum(path.stat().st_size for path in package.rglob("*") if path.is_file()) / 1e6


def _parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--output",
        type=Path,
        default=DEFAULT_OUTPUT,
        help="package directory, cleared first (default: build/package, what s.yaml deploys)",
    )
    parser.add_argument(
        "--python-version",
        help=f"CPython version of the FC runtime (default: {DEFAULT_PYTHON_VERSION})",
    )
    parser.add_argument(
        "--platform",
        action="append",
        help="wheel platform tag; repeat to accept several, e.g. manylinux_2_28_x86_64 too "
        f"(default: {', '.join(DEFAULT_PLATFORMS)})",
    )
    parser.add_argument(
        "--for-this-interpreter",
        action="store_true",
        help="build for the Python running this script, without cross-install flags",
    )
    parser.add_argument(
        "--requirements",
        type=Path,
        help="requirements file (default: requirements.txt beside scripts/)",
    )
    parser.add_argument("--zip", type=Path, help="also write the package as this zip file")
    options = parser.parse_args(argv)
    if options.for_this_interpreter and (options.platform or options.python_version):
        parser.error("--for-this-interpreter takes no --python-version or --platform")
    return options


if __name__ == "__main__":
    sys.exit(main())
