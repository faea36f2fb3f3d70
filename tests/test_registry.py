import importlib
from importlib.metadata import entry_points

import pytest

from graphsurgeon_cg import InputError, available_passes, load_plugin
from graphsurgeon_cg.core.registry import ENTRY_POINT_GROUP

BUILT_INS = {"fold-constants", "reflect2const", "reflect2slice", "resize-nearest", "fp16out",
             "pad-conv-fusion", "static-batch", "opset"}

PLUGIN = '''
from graphsurgeon_cg import Pass, PassResult, register_pass

@register_pass
class CountRelu(Pass):
    name = "count-relu"
    summary = "Counts Relu nodes and changes nothing"
    exact = True

    def run(self, graph, ctx):
        return PassResult(0, [f"{sum(n.op == 'Relu' for n in graph.nodes)} Relu nodes"])
'''


def test_built_ins_come_through_the_public_entry_point_group():
    declared = {ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)}
    assert BUILT_INS <= declared
    passes = available_passes()
    assert BUILT_INS <= set(passes)
    for name in BUILT_INS:
        cls = passes[name]
        assert cls.__module__.startswith("graphsurgeon_cg.passes.")
        assert cls.summary
        assert isinstance(cls.exact, bool)
        doc = importlib.import_module(cls.__module__).__doc__ or ""
        assert doc.startswith(name + ":"), f"{name}: docstring"
        assert "Exact" in doc or "Lossy" in doc, f"{name}: docstring"


def test_plugin_file_registers_a_pass(tmp_path):
    path = tmp_path / "my_passes.py"
    path.write_text(PLUGIN)
    assert load_plugin(path) == ["count-relu"]
    assert "count-relu" in available_passes()


def test_plugin_errors(tmp_path):
    empty = tmp_path / "empty.py"
    empty.write_text("x = 1\n")
    with pytest.raises(InputError, match="registers no pass"):
        load_plugin(empty)
    broken = tmp_path / "broken.py"
    broken.write_text("raise RuntimeError('boom')\n")
    with pytest.raises(InputError, match="failed to import: RuntimeError: boom"):
        load_plugin(broken)
    with pytest.raises(InputError, match="is not a file"):
        load_plugin(tmp_path / "missing.py")


def test_a_second_pass_with_a_taken_name_is_refused(tmp_path):
    path = tmp_path / "clash.py"
    path.write_text(PLUGIN.replace("count-relu", "reflect2slice"))
    with pytest.raises(InputError, match="two passes are named 'reflect2slice'"):
        load_plugin(path)
