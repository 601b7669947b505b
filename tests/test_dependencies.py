"""Every third-party module the packages import is declared in pyproject.toml, and every
standard-library module they use exists in the oldest Python that pyproject.toml allows."""

import ast
import importlib.metadata as md
import re
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("app", "dsp", "models", "training")
ADDED_IN = {"tomllib": (3, 11)}  # standard-library modules newer than some Pythons


def _imports() -> set[str]:
    names = set()
    for pkg in PACKAGES:
        for f in (REPO / pkg).rglob("*.py"):
            for node in ast.walk(ast.parse(f.read_text())):
                if isinstance(node, ast.Import):
                    names |= {a.name.split(".")[0] for a in node.names}
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names.add(node.module.split(".")[0])
    return names


def _project() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def test_third_party_imports_are_declared():
    proj = _project()
    reqs = list(proj["dependencies"]) + [
        r for v in proj["optional-dependencies"].values() for r in v
    ]
    declared = {re.split(r"[<>=!~;\[ ]", r)[0].lower().replace("_", "-") for r in reqs}
    dists = md.packages_distributions()
    missing = []
    for name in sorted(_imports() - set(PACKAGES) - set(sys.stdlib_module_names)):
        owners = {d.lower().replace("_", "-") for d in dists.get(name, [name])}
        if not owners & declared:
            missing.append(f"{name} (from {', '.join(sorted(owners))})")
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"


def test_stdlib_modules_exist_in_the_oldest_allowed_python():
    spec = _project()["requires-python"]
    lowest = tuple(int(v) for v in re.search(r">=\s*(\d+)\.(\d+)", spec).groups())
    used = _imports()
    too_new = [m for m, v in ADDED_IN.items() if m in used and v > lowest]
    assert not too_new, f"{too_new} need a newer Python than requires-python {spec}"


def _lock() -> dict[str, str]:
    pins = {}
    for line in (REPO / "requirements.lock").read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9._-]+)==([^\s;]+)", line)
        if m:
            pins[m[1].lower().replace("_", "-")] = m[2]
    return pins


def test_the_set_up_installed_the_lock():
    """What the tests run on is what requirements.lock says (the set-up installs it), and the
    lock covers every dependency pyproject.toml names."""
    pins = _lock()
    wrong = []
    for name, want in pins.items():
        try:
            got = md.version(name)
        except md.PackageNotFoundError:
            wrong.append(f"{name} (not installed, locked {want})")
            continue
        if got != want:
            wrong.append(f"{name} {got} (locked {want})")
    assert not wrong, f"installed versions differ from requirements.lock: {wrong}"
    proj = _project()
    for req in [
        *proj["dependencies"],
        *(r for v in proj["optional-dependencies"].values() for r in v),
    ]:
        name = re.split(r"[<>=!~;\[ ]", req)[0].lower().replace("_", "-")
        assert name == "torch" or name in pins, f"{name} is not in requirements.lock"
