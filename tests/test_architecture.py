"""The import graph follows the layers of docs/architecture.md: no module imports one above it."""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1] / "src" / "sr1step"

# Lowest first. A unit is a top-level module or a sub-package; a unit may import its own modules
# and any unit of a lower layer, never one of its own layer or above.
LAYERS = [
    {"config", "devices", "distributed", "files", "tiling", "colorfix", "contract"},
    {"weights", "imageio", "download"},
    {"hub"},
    {"nets", "diffusion", "data", "losses", "metrics"},
    {"engine", "generators"},
    {"training"},
    {"methods"},
    {"registry"},
    {"api", "convert", "publish"},
    {"upscale", "benchmark"},
    {"cli"},
    {"__main__"},
]
LAYER = {unit: i for i, units in enumerate(LAYERS) for unit in units}


def unit_of(module: str) -> str:
    return module.split(".")[0]


def imports(path: Path) -> set[str]:
    """sr1step modules imported anywhere in ``path`` (relative imports resolved)."""
    rel = path.relative_to(ROOT).with_suffix("")
    package = list(rel.parts[:-1]) if rel.name != "__init__" else list(rel.parts[:-1])
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
                parts = base + (node.module.split(".") if node.module else [])
                if not parts:  # `from .. import x` at the top: x is a module, or a name of __init__
                    found.update(
                        a.name
                        for a in node.names
                        if (ROOT / f"{a.name}.py").is_file() or (ROOT / a.name).is_dir()
                    )
                    continue
                found.add(".".join(parts))
            elif node.module and node.module.startswith("sr1step."):
                found.add(node.module[len("sr1step.") :])
        elif isinstance(node, ast.Import):
            found.update(a.name[len("sr1step.") :] for a in node.names if a.name.startswith("sr1step."))
    return found


def graph() -> dict[str, set[str]]:
    out = {}
    for path in ROOT.rglob("*.py"):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        out[name] = {m for m in imports(path) if m}
    return out


def test_every_unit_has_a_layer():
    units = {unit_of(m) for m in graph()} - {"__init__"}
    assert units <= set(LAYER), f"add {sorted(units - set(LAYER))} to LAYERS (and to docs/architecture.md)"


def test_no_upward_or_sideways_import():
    bad = []
    for module, targets in graph().items():
        unit = unit_of(module)
        if unit == "__init__":
            continue
        for target in targets:
            other = unit_of(target)
            if other != unit and LAYER[other] >= LAYER[unit]:
                bad.append(f"{module} -> {target}")
    assert not bad, "imports against the layers:\n" + "\n".join(sorted(bad))


def test_no_folder_cycles():
    edges = {}
    for module, targets in graph().items():
        for target in targets:
            if unit_of(target) != unit_of(module):
                edges.setdefault(unit_of(module), set()).add(unit_of(target))
    for a, outs in edges.items():
        for b in outs:
            assert a not in edges.get(b, set()), f"{a} and {b} import each other"


def test_layers_are_the_documented_ones():
    doc = (ROOT.parents[1] / "docs" / "architecture.md").read_text(encoding="utf-8")
    for i, units in enumerate(LAYERS):
        line = next((ln for ln in doc.splitlines() if re.match(rf"^{i}\s", ln)), None)
        assert line is not None, f"layer {i} missing from docs/architecture.md"
        assert {u for u in units} <= set(re.findall(r"[a-z_]+", line)), (i, line)


@pytest.mark.parametrize(
    "module, above",
    [
        ("engine", "generators"),
        ("nets.autoencoders", "engine"),
        ("training.trainer", "methods"),
        ("nets.diffusion_discriminator", "generators"),
        ("weights", "imageio"),
    ],
)
def test_the_imports_the_review_found_are_gone(module, above):
    assert not {t for t in graph()[module] if unit_of(t) == above}


def test_the_test_suite_leaves_no_temporary_folder(tmp_path):
    import os
    import subprocess
    import sys

    env = {**os.environ, "TMPDIR": str(tmp_path)}
    tests = Path(__file__).parent
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        str(tests / "test_architecture.py"),
        "-k",
        "layer",
    ]
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=tests.parent)
    assert run.returncode == 0, run.stdout[-2000:]
    assert not list(tmp_path.glob("sr1step-tests-*"))
