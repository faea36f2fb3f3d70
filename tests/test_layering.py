"""The layering is a rule, not a hope: core -> check -> stages/export/report -> api/flow/testing
-> cli, each layer importing only from the layers before it; and importing the package or
the pass API loads no onnxruntime, torch or matplotlib."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "graphsurgeon_cg"
LAYERS = {"core": 1, "check": 2, "stages": 3, "export": 3, "report": 3, "targets": 3, "api": 4, "flow": 4,
          "testing": 4, "tune": 4, "distributed": 4, "cli": 5, "__init__": 0, "__main__": 6}
HEAVY = ("onnxruntime", "torch", "matplotlib")


def _layer_of(module: str) -> int:
    top = module.split(".")[0]
    return LAYERS[top]


def _imports(path: Path) -> list[str]:
    """The graphsurgeon_cg modules ``path`` imports (relative imports resolved), at any depth."""
    rel = path.relative_to(PACKAGE).with_suffix("")
    package = list(rel.parts[:-1]) if rel.name != "__init__" else list(rel.parts[:-1])
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
                target = ".".join(base + ([node.module] if node.module else []))
                names = [target] if node.module else [f"{target}.{a.name}".strip(".") for a in node.names]
                found += [n for n in names if n]
            elif node.module and node.module.startswith("graphsurgeon_cg."):
                found.append(node.module.removeprefix("graphsurgeon_cg."))
        elif isinstance(node, ast.Import):
            found += [a.name.removeprefix("graphsurgeon_cg.") for a in node.names
                      if a.name.startswith("graphsurgeon_cg.")]
    return found


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        yield path, ".".join(path.relative_to(PACKAGE).with_suffix("").parts)


@pytest.mark.parametrize("path, module", list(_modules()), ids=lambda v: v if isinstance(v, str) else "")
def test_imports_point_down_the_layers(path, module):
    if module == "__init__":
        return  # the package root re-exports core eagerly, the rest lazily (checked below)
    own = _layer_of(module)
    for target in _imports(path):
        assert _layer_of(target) <= own, f"{module} (layer {own}) imports {target} (layer {_layer_of(target)})"


def _loaded_after(code: str) -> dict:
    probe = code + f"\nimport json, sys\nprint(json.dumps({{m: m in sys.modules for m in {list(HEAVY)!r}}}))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("code", [
    "import graphsurgeon_cg",
    "from graphsurgeon_cg import Pass, PassResult, register_pass, Option, NodeRewritePass",
    "import graphsurgeon_cg.core",
    "from graphsurgeon_cg import available_passes, PassManager; available_passes()",
])
def test_the_pass_api_loads_no_runtime(code):
    loaded = _loaded_after(code)
    assert not any(loaded.values()), f"{code!r} loaded {[m for m, v in loaded.items() if v]}"


def test_running_a_pipeline_without_checks_loads_no_runtime_but_fold_constants_may():
    code = ("import onnx; from graphsurgeon_cg import PassManager\n"
            f"m = onnx.load({str(PACKAGE.parent / 'tests/fixtures/cyclegan_tiny_opset17.onnx')!r})\n"
            "PassManager('static-batch(batch=2),reflect2slice').run(m)")
    assert not any(_loaded_after(code).values())
