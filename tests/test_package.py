"""The deploy artifact from scripts/build_package.py: it runs the handler with nothing else
on sys.path, and what it ships is built for FC's python3.10 runtime on x86_64 Linux.

Each build downloads the pinned requirements from PyPI (pip's cache makes a rebuild
quick); the handler runs against the collector API emulator on loopback.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from scripts.build_package import BuildError, _clear, _pinned_name
from tests.conftest import (
    COLLECTOR,
    EVENTS,
    NODE_1,
    NODE_2,
    STS_KEY_ID,
    STS_SECRET,
    STS_TOKEN,
)
from tests.emulators.collector_api import CollectorApiEmulator

ROOT = Path(__file__).resolve().parent.parent
#: pip's cache lives in the real home; the tests' own HOME is a fresh directory.
REAL_HOME = Path.home()
FC_PYTHON = "3.10"
FC_PLATFORM = "manylinux2014_x86_64"

# Runs in ``python -I -S``: no site-packages, no PYTHONPATH, only the package on sys.path.
# Prints the summary and every module that came from neither the package nor the stdlib.
_RUN_HANDLER = textwrap.dedent(
    """
    import json, sys, sysconfig, uuid
    package, event_file = sys.argv[1], sys.argv[2]
    sys.path.insert(0, package)
    import index

    class Function:
        name, handler, memory, timeout = "collector-reinstall", "index.handler", 512, 60

    class Context:
        request_id = str(uuid.uuid4())
        function = Function()
        region = "cn-hangzhou"
        account_id = "1234567890123456"

    index.initializer(Context())
    with open(event_file, "rb") as event:
        summary = index.handler(event.read(), Context())
    stdlib = (sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["platstdlib"])

    def allowed(path):
        in_stdlib = path.startswith(stdlib) and "site-packages" not in path
        return path.startswith(package) or in_stdlib

    outside = sorted(
        name
        for name, module in list(sys.modules.items())
        if getattr(module, "__file__", None) and not allowed(module.__file__)
    )
    print(json.dumps({"summary": summary, "outside": outside}))
    """
)


def build(output: Path, *options: str) -> Path:
    """One command, as a person runs it: scripts/build_package.py."""
    result = subprocess.run(
        [sys.executable, "scripts/build_package.py", "--output", str(output), *options],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "HOME": str(REAL_HOME)},
        check=False,
    )
    assert result.returncode == 0, f"build failed:\n{result.stdout}\n{result.stderr}"
    return output


@pytest.fixture(scope="module")
def package_for_this_interpreter(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("build") / "package", "--for-this-interpreter")


@pytest.fixture(scope="module")
def package_for_fc(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(
        tmp_path_factory.mktemp("build") / "package",
        "--python-version",
        FC_PYTHON,
        "--platform",
        FC_PLATFORM,
    )


def run_handler(
    python: str, package: Path, emulator: CollectorApiEmulator, tmp_path: Path
) -> dict[str, object]:
    """The sample CloudEvent through ``index.handler`` in a clean interpreter, with the
    role's credentials in the environment as FC's python3.12 runtime passes them."""
    environment = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "ES_ENDPOINT": emulator.url,
        "ALIBABA_CLOUD_ACCESS_KEY_ID": STS_KEY_ID,
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET": STS_SECRET,
        "ALIBABA_CLOUD_SECURITY_TOKEN": STS_TOKEN,
        "ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true",
        "ALIBABA_CLOUD_CLI_PROFILE_DISABLED": "true",
        "NO_PROXY": "127.0.0.1,localhost",
    }
    event = EVENTS / "eventbridge-cloudevent.json"
    result = subprocess.run(
        [python, "-I", "-S", "-c", _RUN_HANDLER, str(package), str(event)],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    output: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    return output


def assert_reinstalled_through_the_emulator(
    output: dict[str, object], emulator: CollectorApiEmulator
) -> None:
    assert output["outside"] == []
    summary = output["summary"]
    assert isinstance(summary, dict)
    assert summary["outcome"] == "succeeded"
    assert [list(r.nodes) for r in emulator.effective_reinstalls(COLLECTOR)] == [[NODE_1, NODE_2]]
    reinstall_requests = [r for r in emulator.requests if r.action == "ReinstallCollector"]
    assert reinstall_requests
    assert all(r.signature_valid for r in reinstall_requests)


def test_package_runs_the_handler_with_nothing_else_on_sys_path(
    package_for_this_interpreter: Path, emulator: CollectorApiEmulator, tmp_path: Path
) -> None:
    output = run_handler(sys.executable, package_for_this_interpreter, emulator, tmp_path)

    assert_reinstalled_through_the_emulator(output, emulator)


def find_python(version: str) -> str | None:
    """An interpreter of ``version`` that really runs (a pyenv shim may not)."""
    pyenv = REAL_HOME / ".pyenv" / "versions"
    candidates = [shutil.which(f"python{version}")]
    candidates += sorted(str(path) for path in pyenv.glob(f"{version}.*/bin/python{version}"))
    for python in filter(None, candidates):
        probe = [python, "-c", f"import sys; assert sys.version.startswith('{version}.')"]
        if subprocess.run(probe, capture_output=True, check=False).returncode == 0:
            return python
    return None


def test_fc_package_runs_the_handler_on_cpython_310(
    package_for_fc: Path, emulator: CollectorApiEmulator, tmp_path: Path
) -> None:
    python = find_python(FC_PYTHON)
    if python is None:
        pytest.skip(f"no python{FC_PYTHON} on this machine to run the FC package with")

    output = run_handler(python, package_for_fc, emulator, tmp_path)

    assert_reinstalled_through_the_emulator(output, emulator)


def wheel_tags(package: Path) -> dict[str, tuple[bool, list[str]]]:
    """Each installed distribution: whether it is pure Python, and its wheel tags."""
    found = {}
    for wheel_file in package.glob("*.dist-info/WHEEL"):
        lines = wheel_file.read_text(encoding="utf-8").splitlines()
        pure = "Root-Is-Purelib: true" in lines
        tags = [line.split(":", 1)[1].strip() for line in lines if line.startswith("Tag:")]
        found[wheel_file.parent.name] = (pure, tags)
    return found


def fits_cpython_310_x86_64(tag: str) -> bool:
    interpreter, abi, platform = tag.split("-")
    for_310 = interpreter == abi == "cp310"
    stable_abi = abi == "abi3" and re.fullmatch(r"cp3(?:[2-9]|10)", interpreter) is not None
    linux_x86_64 = re.fullmatch(r"manylinux(?:1|2010|2014|_2_\d+)_x86_64", platform) is not None
    return (for_310 or stable_abi) and linux_x86_64


def test_fc_package_installs_only_wheels_for_cpython_310_on_x86_64_linux(
    package_for_fc: Path,
) -> None:
    distributions = wheel_tags(package_for_fc)
    compiled = {name: tags for name, (pure, tags) in distributions.items() if not pure}
    wrong = {
        name: tags
        for name, (pure, tags) in distributions.items()
        if not all(
            tag.endswith("-none-any") if pure else fits_cpython_310_x86_64(tag) for tag in tags
        )
    }

    assert compiled, "no compiled distribution: the check would prove nothing"
    assert all(tags for _, tags in distributions.values())
    assert wrong == {}


def test_fc_package_extension_modules_are_for_cpython_310_on_x86_64(
    package_for_fc: Path,
) -> None:
    extensions = [path for path in package_for_fc.rglob("*.so*") if path.is_file()]
    wrong = []
    for path in extensions:
        tagged = re.search(r"\.cpython-(\d+)-([a-z0-9_]+)-linux-gnu\.so$", path.name)
        if tagged:
            if tagged.groups() != ("310", "x86_64"):
                wrong.append(path.name)
        elif not path.name.endswith(".abi3.so") and not path.parent.name.endswith(".libs"):
            wrong.append(path.name)

    assert extensions
    assert wrong == []


def test_fc_package_has_no_bytecode_for_another_python(package_for_fc: Path) -> None:
    other = [p.name for p in package_for_fc.rglob("*.pyc") if ".cpython-310." not in p.name]

    assert other == []


def test_package_holds_every_pinned_requirement_and_the_function_code(
    package_for_fc: Path,
) -> None:
    installed = {
        re.sub(r"[-_.]+", "-", path.name.removesuffix(".dist-info").rsplit("-", 1)[0]).lower()
        + "=="
        + path.name.removesuffix(".dist-info").rsplit("-", 1)[1]
        for path in package_for_fc.glob("*.dist-info")
    }
    pinned = {
        re.sub(r"[-_.]+", "-", line.split("==")[0]).lower() + "==" + line.split("==")[1]
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    }

    assert pinned <= installed
    for source in [ROOT / "src" / "index.py", *(ROOT / "src").glob("collector_reinstall/*.py")]:
        shipped = package_for_fc / source.relative_to(ROOT / "src")
        assert shipped.read_bytes() == source.read_bytes(), shipped


def test_build_refuses_to_clear_a_directory_it_did_not_build(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")

    with pytest.raises(BuildError, match="not a package built here"):
        _clear(tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize(
    ("sdist", "requirement"),
    [
        ("aliyun-fc2-2.5.2.tar.gz", "aliyun-fc2==2.5.2"),
        ("alibabacloud-tea-0.4.3.tar.gz", "alibabacloud-tea==0.4.3"),
        ("alibabacloud_tea-0.4.3.zip", "alibabacloud_tea==0.4.3"),
    ],
)
def test_an_sdist_is_rebuilt_from_its_pinned_requirement(sdist: str, requirement: str) -> None:
    assert _pinned_name(Path(sdist)) == requirement
