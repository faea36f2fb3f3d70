"""The README's whole-flow example (examples/flow.sh) runs as documented."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
FLOW = Path(__file__).parents[1] / "examples" / "flow.sh"


def test_flow_script_runs_end_to_end(tmp_path):
    # flow.sh calls `python` and `cgsurg`: both must be this interpreter's, whether or not its
    # bin folder (where the console script is installed) is on PATH
    bin_dir = os.path.dirname(sys.executable)
    assert os.path.isfile(os.path.join(bin_dir, "cgsurg")), "the console script is installed with the package"
    env = {**os.environ, "PATH": os.pathsep.join([bin_dir, os.environ.get("PATH", "")])}
    run = subprocess.run(["bash", str(FLOW)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    out = run.stdout + run.stderr
    for expected in ("verified: ONNX Runtime vs PyTorch", "wrote onnxmodel/model_Ga_ascend.onnx",
                     "wrote 4 samples", "pixel cosine (vendor metric)", "(exit 3)", "images/s", "Conv"):
        assert expected in out, expected
    assert len(list((tmp_path / "out_ascend").glob("*.png"))) == 4
