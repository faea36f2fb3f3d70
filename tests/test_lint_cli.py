"""cgsurg lint / targets / apply --target (issue 11) on the command line, and target plug-ins."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import onnx

from graphsurgeon_cg.testing import model_from_text

from models import FIXTURE_PADS, OPSET11, OPSET17, invoke

REFLECT = """<ir_version: 8, opset_import: ["" : 13]>
g (float[1,3,8,8] x) => (float[1,3,10,10] y) <int64[8] pads = {0, 0, 1, 1, 0, 0, 1, 1}>
{ y = Pad <mode = "reflect"> (x, pads) }"""


def save(tmp_path, text: str, name: str = "m.onnx"):
    path = tmp_path / name
    onnx.save(model_from_text(text), path)
    return path


def test_lint_exit_codes_clean_warnings_errors(tmp_path):
    model = save(tmp_path, REFLECT)
    clean = invoke("lint", model, "--target", "ort")
    assert clean.exit_code == 0, clean.output + clean.stderr
    assert "0 error(s), 0 warning(s)" in clean.output
    warned = invoke("lint", model, "--target", "ascend:cann8")  # reflect Pad: accepted but slow
    assert warned.exit_code == 4, warned.output + warned.stderr
    assert "warning   pad-mode" in warned.output and "reflect2slice" in warned.output
    refused = invoke("lint", model, "--target", "ascend:cann5")
    assert refused.exit_code == 5
    assert "error     pad-mode" in refused.output


def test_lint_groups_the_fixture_findings_by_rule_with_counts_and_first_nodes():
    result = invoke("lint", OPSET17, "--target", "ascend:cann5")
    assert result.exit_code == 5
    line = next(x for x in result.output.splitlines() if "pad-mode" in x)
    assert line.split()[:4] == ["error", "pad-mode", str(FIXTURE_PADS), "reflect2slice"]
    assert "nodes: /model/model.0/Pad" in result.output and f"(+{FIXTURE_PADS - 3} more)" in result.output


def test_lint_json():
    result = invoke("lint", OPSET17, "--target", "ascend:cann5", "--json")
    assert result.exit_code == 5
    data = json.loads(result.output)
    assert data["target"] == "ascend:cann5" and data["exit_code"] == 5
    pads = [f for f in data["findings"] if f["rule"] == "pad-mode"]
    assert len(pads) == FIXTURE_PADS
    assert set(pads[0]) == {"rule", "severity", "message", "node", "op", "fix"}
    assert pads[0]["severity"] == "error" and pads[0]["fix"] == "reflect2slice"


def test_bad_input_is_one_line_exit_2(tmp_path):
    for args, message in [(("lint", OPSET11, "--target", "ascnd"), "unknown target 'ascnd'; did you mean 'ascend'?"),
                          (("lint", OPSET11, "--target", "tensorrt:7"), "unknown version '7' of target 'tensorrt'"),
                          (("lint", tmp_path / "missing.onnx", "--target", "ort"), "no such file"),
                          (("apply", OPSET11, "-o", tmp_path / "o.onnx", "--target", "nope"), "unknown target 'nope'"),
                          (("apply", OPSET11, "-o", tmp_path / "o.onnx", "--target", "tensorrt", "--aipp"),
                           "AIPP is Ascend's preprocessing"),
                          (("apply", OPSET11, "-o", tmp_path / "o.onnx", "--lossy", "--passes", "fold-constants"),
                           "lossy needs a target"),
                          (("apply", OPSET11, "-o", tmp_path / "o.onnx"), "give --passes PIPELINE, --target NAME")]:
        result = invoke(*args)
        assert result.exit_code == 2, (args, result.output, result.stderr)
        assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "Traceback" not in result.stderr
    assert not list(tmp_path.iterdir())


def test_apply_target_ascend_leaves_no_errors_and_prints_the_atc_line(tmp_path):
    out = tmp_path / "g.onnx"
    result = invoke("apply", OPSET11, "-o", out, "--target", "ascend")
    assert result.exit_code == 0, result.output + result.stderr
    assert ("pipeline: fold-constants,opset(min=9,max=18),nearest-half-pixel,reflect2slice,pad-conv-fusion"
            in result.output)
    assert "ascend:cann8: no errors or warnings" in result.output
    atc = next(x for x in result.output.splitlines() if x.startswith("atc "))
    assert "--framework=5" in atc and f"--model={out}" in atc
    assert "--input_shape=img_sat_maps:-1,3,64,64" in atc and "--dynamic_batch_size=1,2,4,8" in atc
    assert "--output_type=FP32" in atc
    script = (tmp_path / "g.atc.sh").read_text()
    assert "--model=g.onnx" in script and 'cd "$(dirname "$0")"' in script
    assert os.access(tmp_path / "g.atc.sh", os.X_OK)
    assert [n for n in onnx.load(out).graph.node if n.op_type == "Pad"] == []


def test_apply_target_with_passes_on_top_static_batch_and_aipp(tmp_path):
    out = tmp_path / "g.onnx"
    result = invoke("apply", OPSET11, "-o", out, "--target", "ascend:cann5", "--passes",
                    "static-batch(batch=1),fp16out", "--aipp", "--json")
    assert result.exit_code == 0, result.output + result.stderr
    data = json.loads(result.output)
    assert data["pipeline"] == ("fold-constants,opset(min=9,max=13),nearest-half-pixel,reflect2slice,"
                                "pad-conv-fusion,static-batch,fp16out")
    assert data["lint"]["errors"] == 0
    atc = data["compile"]["command"]
    assert "--input_shape=img_sat_maps:1,3,64,64" in atc and "--dynamic_batch_size" not in atc
    assert "--output=g_bs1" in atc  # the .om lands where atc runs
    assert "--output_type=FP16" in atc and f"--insert_op_conf={tmp_path / 'g.aipp.cfg'}" in atc
    cfg = (tmp_path / "g.aipp.cfg").read_text()
    assert "min_chn_0: 127.5" in cfg and "var_reci_chn_2: 0.0078431" in cfg and "src_image_size_w: 64" in cfg
    assert "--insert_op_conf=g.aipp.cfg" in (tmp_path / "g.atc.sh").read_text()


def test_apply_target_that_leaves_errors_exits_3_writes_nothing_and_names_no_unwritten_file(tmp_path):
    out = tmp_path / "out" / "g.onnx"
    out.parent.mkdir()
    edge = save(tmp_path, REFLECT.replace('"reflect"', '"edge"'))  # no cgsurg pass replaces an edge Pad
    result = invoke("apply", edge, "-o", out, "--target", "ascend:cann5")
    assert result.exit_code == 3, result.output + result.stderr
    assert "error     pad-mode" in result.stderr
    assert f"1 error(s), 0 warning(s) in the rewritten model (not written to {out})" in result.stderr
    assert f"in {out}" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("cgsurg: error: the result still has 1 error(s) "
                                                             "for ascend:cann5: pad-mode (1)")
    assert not list(out.parent.iterdir())


def test_apply_target_cann5_lowers_an_opset_17_export_by_itself(tmp_path):
    out = tmp_path / "g.onnx"
    result = invoke("apply", OPSET17, "-o", out, "--target", "ascend:cann5")
    assert result.exit_code == 0, result.output + result.stderr
    assert "opset(min=9,max=13)         1" in result.output
    assert "max_abs 0 " in result.output  # the whole preset is exact here
    assert f"ascend:cann5: no errors or warnings in {out}" in result.output
    assert onnx.load(out).opset_import[0].version == 13


def test_apply_target_cann5_on_the_third_party_orientation_classifier(tmp_path):
    from thirdparty import model_path

    out = tmp_path / "o.onnx"
    result = invoke("apply", model_path("orientation"), "-o", out, "--target", "ascend:cann5")
    assert result.exit_code == 0, result.output + result.stderr
    assert "HardSigmoid +28, HardSwish -28, Mul +28" in result.output
    assert f"ascend:cann5: no errors or warnings in {out}" in result.output
    lint = invoke("lint", out, "--target", "ascend:cann5")
    assert lint.exit_code == 0, lint.output


def test_apply_other_targets_write_their_commands(tmp_path):
    trt = invoke("apply", OPSET11, "-o", tmp_path / "t.onnx", "--target", "tensorrt:8.0", "--no-check")
    assert trt.exit_code == 0, trt.output + trt.stderr
    assert (f"trtexec --onnx={tmp_path / 't.onnx'} --minShapes=img_sat_maps:1x3x64x64 "
            "--optShapes=img_sat_maps:8x3x64x64 --maxShapes=img_sat_maps:16x3x64x64 --fp16") in trt.output
    assert (tmp_path / "t.trtexec.sh").exists()
    ov = invoke("apply", OPSET11, "-o", tmp_path / "v.onnx", "--target", "openvino", "--no-check")
    assert f"ovc {tmp_path / 'v.onnx'} --output_model v.xml --input 'img_sat_maps[?,3,64,64]'" in ov.output
    ort = invoke("apply", OPSET11, "-o", tmp_path / "r.onnx", "--target", "ort", "--no-check")
    assert "no compile step" in ort.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.onnx", "t.onnx", "t.trtexec.sh", "v.onnx", "v.ovc.sh"]


def test_targets_lists_versions_rules_and_presets():
    text = invoke("targets")
    assert text.exit_code == 0
    assert "ascend:cann8 (default)" in text.output and "rule reflect-pad-size" in text.output
    rows = {r["name"]: r for r in json.loads(invoke("targets", "--json").output)}
    assert set(rows) >= {"ascend", "tensorrt", "openvino", "ort"}
    cann5 = rows["ascend"]["versions"]["cann5"]
    assert cann5["preset"] == "fold-constants,opset(min=9,max=13),nearest-half-pixel,reflect2slice,pad-conv-fusion"
    assert "reflect2const" in cann5["lossy_preset"]
    assert {r["id"] for r in cann5["rules"]} >= {"opset", "ops", "pad-mode", "reflect-pad-size", "constant-operands",
                                                 "resize", "conv-transpose", "dynamic-dims", "symbolic-shapes",
                                                 "dtypes"}
    assert rows["ort"]["tool"] is None


PLUGIN_TARGET = '''
from graphsurgeon_cg.targets import ERROR, Rule, Target, register_target


class NoRelu(Rule):
    id = "no-relu"
    summary = "this accelerator has no Relu"

    def check(self, graph):
        for node in graph.nodes:
            if node.op_type == "Relu":
                yield self.finding(ERROR, "Relu is not supported", node)


@register_target
class Acme(Target):
    name = "acme"
    summary = "ACME NPU compiler"
    versions = {"1": "ACME SDK 1.x"}
    default_version = "1"

    def rules(self):
        return [NoRelu()]

    def preset(self, lossy=False):
        return "fold-constants"
'''


def run_cli(*args, env_path=None):
    env = dict(os.environ)
    if env_path:
        env["PYTHONPATH"] = os.pathsep.join([str(env_path), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-m", "graphsurgeon_cg", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=300)


def test_a_target_declared_by_an_installed_package_is_found(tmp_path):
    (tmp_path / "acme_targets.py").write_text(PLUGIN_TARGET)
    dist = tmp_path / "acme_targets-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-targets\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[cgsurg.targets]\nacme = acme_targets:Acme\n")
    listed = run_cli("targets", "--json", env_path=tmp_path)
    assert listed.returncode == 0, listed.stderr
    acme = next(r for r in json.loads(listed.stdout) if r["name"] == "acme")
    assert acme["module"] == "acme_targets" and acme["versions"]["1"]["rules"][0]["id"] == "no-relu"
    linted = run_cli("lint", OPSET11, "--target", "acme", env_path=tmp_path)
    assert linted.returncode == 5 and "no-relu" in linted.stdout


def test_a_target_plugin_file(tmp_path):
    plugin = tmp_path / "acme.py"
    plugin.write_text(textwrap.dedent(PLUGIN_TARGET).replace('"acme"', '"acme-file"'))
    result = run_cli("lint", OPSET11, "--target", "acme-file", "--plugin", plugin)
    assert result.returncode == 5, result.stderr
    assert "acme-file:1: 7 error(s)" in result.stdout
