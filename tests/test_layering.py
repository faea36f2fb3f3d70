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
LAYERS = {"core": 1, "check": 2, "stages": 3, "export": 3, "report": 3, "targets": 3, "api": 4, "workflows": 4,
          "testing": 4, "tune": 4, "distributed": 4, "cluster": 4, "services": 4, "cli": 5, "__init__": 0,
          "__main__": 6}
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


PASSES = PACKAGE.parent / "passes"
PASS_API = ("graphsurgeon_cg", "graphsurgeon_cg.core")  # and the core's modules, and sibling passes


def _absolute_imports(path: Path, package: str) -> list[str]:
    """Every module ``path`` imports, relative imports resolved against ``package``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                found.append(".".join(base + ([node.module] if node.module else [])))
            elif node.module:
                found.append(node.module)
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names]
    return found


@pytest.mark.parametrize("path", sorted(PASSES.glob("*.py")), ids=lambda p: p.name)
def test_passes_import_only_the_pass_api(path):
    """A pass is drawn above core and below everything else: what it needs from the run
    (samples, a runtime) comes through its context (``PassContext.services``)."""
    for target in _absolute_imports(path, "graphsurgeon_cg.passes"):
        if not target.startswith("graphsurgeon_cg"):
            continue
        allowed = target in PASS_API or target.startswith(("graphsurgeon_cg.core.", "graphsurgeon_cg.passes"))
        assert allowed, f"passes/{path.name} imports {target}: passes may import only the pass API"


def test_the_package_has_no_import_cycles():
    """Type-checking imports count too: a cycle there is a cycle in the design."""
    nx = pytest.importorskip("networkx")
    graph = nx.DiGraph()
    modules = {module: path for path, module in _modules()}
    for module, path in modules.items():
        package = "graphsurgeon_cg." + (module.rsplit(".", 1)[0] if "." in module else "")
        if path.name == "__init__.py":
            package = "graphsurgeon_cg." + module.removesuffix("__init__").rstrip(".")
        for target in _absolute_imports(path, package.rstrip(".")):
            name = target.removeprefix("graphsurgeon_cg.")
            while name and name not in modules and f"{name}.__init__" not in modules:
                name = name.rpartition(".")[0]  # 'from .x import f' names x.f: the module is x
            if name and target.startswith("graphsurgeon_cg.") and name != module:
                graph.add_edge(module, name if name in modules else f"{name}.__init__")
    cycles = [c for c in nx.simple_cycles(graph) if not any(m.endswith("__init__") for m in c)]
    assert not cycles, f"import cycles: {cycles[:3]}"


def test_setup_cfg_lists_every_package():
    """A non-editable install ships only the packages setup.cfg names."""
    import configparser

    config = configparser.ConfigParser()
    config.read(PACKAGE.parent / "setup.cfg")
    listed = set(config["options"]["packages"].split())
    found = {"graphsurgeon_cg." + ".".join(p.parent.relative_to(PACKAGE).parts) if p.parent != PACKAGE
             else "graphsurgeon_cg" for p in PACKAGE.rglob("__init__.py")} | {"graphsurgeon_cg.passes"}
    assert found <= listed, f"missing from setup.cfg [options] packages: {sorted(found - listed)}"


@pytest.mark.parametrize("path", sorted([*PACKAGE.rglob("*.py"), *PASSES.glob("*.py")]),
                         ids=lambda p: str(p.relative_to(PACKAGE.parent)))
def test_no_module_is_over_400_lines(path):
    """A module that grows past this does several jobs: split it by role."""
    assert len(path.read_text().splitlines()) <= 400
