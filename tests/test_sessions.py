"""One ONNX Runtime session per model per run: the original's outputs are computed once and
shared by the check, the report and the verdict (issue 19). Sessions are counted by wrapping
``onnxruntime.InferenceSession.__init__`` around the real constructor."""

import onnx
import onnxruntime as ort
import pytest

from models import OPSET11, folded, invoke, prepped_photos

# 3 passes that each change the graph; fold-constants is left out because onnx-graphsurgeon's
# folding evaluates the constant subgraphs in a session of their own (a pass's own work).
PIPELINE = "reflect2slice,pad-conv-fusion,static-batch(batch=1)"


@pytest.fixture
def model(tmp_path):
    path = tmp_path / "folded.onnx"
    onnx.save(folded(OPSET11), path)
    return path


@pytest.fixture
def info(tmp_path):
    return prepped_photos(tmp_path, seed=0, prefix="p")


@pytest.fixture
def sessions(monkeypatch):
    opened = []
    real = ort.InferenceSession.__init__

    def counting(self, *args, **kwargs):
        opened.append(args[0] if args and isinstance(args[0], str) else "<bytes>")
        real(self, *args, **kwargs)

    monkeypatch.setattr(ort.InferenceSession, "__init__", counting)
    return opened


def test_apply_with_data_opens_at_most_two_sessions(tmp_path, model, info, sessions):
    result = invoke("apply", model, "-o", tmp_path / "o.onnx", "--passes", PIPELINE, "--data", info)
    assert result.exit_code == 0, result.output
    assert "on 3 samples of" in result.output  # the check ran, on the info file's samples
    assert len(sessions) <= 2, sessions


def test_apply_with_report_opens_at_most_passes_plus_two(tmp_path, model, info, sessions):
    result = invoke("apply", model, "-o", tmp_path / "o.onnx", "--passes", PIPELINE, "--data", info,
                    "--report", tmp_path / "rep", "--check-each")
    assert result.exit_code == 0, result.output
    assert '"changed_outputs"' in (tmp_path / "rep" / "report.json").read_text()
    assert len(sessions) <= 3 + 2, sessions


def test_a_failed_check_still_shares_the_original(tmp_path, model, info, sessions):
    """A breach replays the stages to name the culprit: the original is still opened once."""
    result = invoke("apply", model, "-o", tmp_path / "o.onnx", "--passes", "reflect2const,pad-conv-fusion",
                    "--data", info, "--min-cos", "0.999999")
    assert result.exit_code == 3, result.output
    assert len(sessions) <= 3, sessions
