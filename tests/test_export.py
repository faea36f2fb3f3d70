"""Export of official-layout checkpoints (needs torch, installed with the [export] extra)."""

import numpy as np
import onnx
import pytest

torch = pytest.importorskip("torch")

from graphsurgeon_cg import GeneratorSpec, InputError, build_generator, export_checkpoint  # noqa: E402
from graphsurgeon_cg.export import detect_spec, load_state_dict  # noqa: E402

from models import invoke, ort_run  # noqa: E402


def seeded(spec: GeneratorSpec, seed: int = 0):
    torch.manual_seed(seed)
    model = build_generator(spec).eval()
    with torch.no_grad():  # non-trivial norm statistics and affine parameters, so a mix-up shows
        for name, tensor in model.state_dict().items():
            if name.endswith(("running_mean", "weight", "bias")) and tensor.dtype.is_floating_point:
                tensor.add_(0.1 * torch.randn_like(tensor))
            elif name.endswith("running_var"):
                tensor.uniform_(0.5, 1.5)
    return model


def torch_out(model, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


CASES = [  # (spec, size, how the checkpoint is wrapped)
    (GeneratorSpec("resnet_9blocks", ngf=4), 32, "bare"),
    (GeneratorSpec("resnet_6blocks", ngf=6, use_dropout=True), 32, "state_dict"),
    (GeneratorSpec("resnet_6blocks", ngf=4, norm="batch"), 32, "module"),
    (GeneratorSpec("resnet_9blocks", ngf=4, norm="instance_affine"), 32, "netG"),
    (GeneratorSpec("unet_256", ngf=4, norm="batch"), 256, "model"),
    (GeneratorSpec("unet_128", ngf=4, norm="instance"), 128, "bare"),
    (GeneratorSpec("unet_128", ngf=4, norm="none"), 128, "state_dict"),
]


def wrap(state: dict, how: str):
    if how == "bare":
        return state
    if how == "module":
        return {f"module.{k}": v for k, v in state.items()}
    return {how: state, "epoch": torch.tensor(200)}


@pytest.mark.parametrize("spec, size, how", CASES, ids=[f"{c[0].arch}-{c[0].norm}-{c[2]}" for c in CASES])
def test_export_detects_layout_and_matches_torch(tmp_path, spec, size, how):
    model = seeded(spec)
    ckpt = tmp_path / "latest_net_G.pth"
    torch.save(wrap(model.state_dict(), how), ckpt)
    assert detect_spec(load_state_dict(ckpt)) == spec
    out = tmp_path / "g.onnx"
    result = invoke("export", ckpt, "-o", out, "--size", size)
    assert result.exit_code == 0, result.output + result.stderr
    assert f"architecture: {spec.describe()}" in result.output
    assert "max abs diff" in result.output
    onnx_model = onnx.load(str(out))
    assert [o.version for o in onnx_model.opset_import if o.domain in ("", "ai.onnx")] == [11]
    x = np.random.default_rng(3).uniform(-1, 1, (2, 3, size, size)).astype(np.float32)  # dynamic batch
    assert np.abs(ort_run(onnx_model, {"input": x})[0] - torch_out(model, x)).max() <= 1e-4


def test_both_generators_get_the_vendor_names_and_are_never_swapped(tmp_path):
    spec = GeneratorSpec("resnet_6blocks", ngf=4)
    g_a, g_b = seeded(spec, seed=1), seeded(spec, seed=2)
    torch.save(g_a.state_dict(), tmp_path / "latest_net_G_A.pth")
    torch.save(g_b.state_dict(), tmp_path / "latest_net_G_B.pth")
    out = tmp_path / "onnxmodel"
    result = invoke("export", "--g-a", tmp_path / "latest_net_G_A.pth", "--g-b", tmp_path / "latest_net_G_B.pth",
                    "-o", out, "--size", 32)
    assert result.exit_code == 0, result.stderr
    x = np.random.default_rng(0).uniform(-1, 1, (1, 3, 32, 32)).astype(np.float32)
    ga, gb = onnx.load(str(out / "model_Ga.onnx")), onnx.load(str(out / "model_Gb.onnx"))
    assert (ga.graph.input[0].name, ga.graph.output[0].name) == ("img_sat_maps", "maps")
    assert (gb.graph.input[0].name, gb.graph.output[0].name) == ("img_maps_sat", "sat")
    ya, yb = ort_run(ga, {"img_sat_maps": x})[0], ort_run(gb, {"img_maps_sat": x})[0]
    assert np.abs(ya - torch_out(g_a, x)).max() <= 1e-4
    assert np.abs(yb - torch_out(g_b, x)).max() <= 1e-4
    assert np.abs(ya - yb).max() > 1e-2  # the two generators really differ, so a swap would show


def test_static_batch_legacy_keys_and_overrides(tmp_path):
    spec = GeneratorSpec("resnet_6blocks", ngf=4)
    state = seeded(spec).state_dict()
    state.update({"model.2.running_mean": torch.zeros(4), "model.2.running_var": torch.ones(4),
                  "model.2.num_batches_tracked": torch.tensor(0)})
    ckpt = tmp_path / "old.pth"
    torch.save(state, ckpt)
    out = tmp_path / "g.onnx"
    result = invoke("export", ckpt, "-o", out, "--size", 32, "--batch", 4, "--input-name", "x", "--output-name", "y")
    assert result.exit_code == 0, result.stderr
    assert "dropped 3 legacy InstanceNorm running-statistics keys" in result.output
    dims = [d.dim_value for d in onnx.load(str(out)).graph.input[0].type.tensor_type.shape.dim]
    assert dims == [4, 3, 32, 32]
    forced = invoke("export", ckpt, "-o", tmp_path / "bad.onnx", "--size", 32, "--arch", "resnet_9blocks")
    assert forced.exit_code == 2
    assert "does not fit resnet_9blocks" in forced.stderr
    assert "missing keys: model.16.conv_block" in forced.stderr
    assert "wrong shapes: model.19.bias" in forced.stderr
    assert not (tmp_path / "bad.onnx").exists()


def test_export_then_exact_rewrite(tmp_path):
    torch.save(seeded(GeneratorSpec("resnet_9blocks", ngf=4)).state_dict(), tmp_path / "g.pth")
    export_checkpoint(tmp_path / "g.pth", tmp_path / "g.onnx", size=32)
    result = invoke("apply", tmp_path / "g.onnx", "-o", tmp_path / "g_exact.onnx",
                    "--passes", "fold-constants,reflect2slice", "--input-shape", "input:1,3,32,32")
    assert result.exit_code == 0, result.output + result.stderr
    assert "max_abs 0 " in result.output, result.output


class Evil:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_malicious_pickle_is_refused_and_not_run(tmp_path):
    victim = tmp_path / "pwned.txt"
    ckpt = tmp_path / "evil.pth"
    torch.save({"model.1.weight": torch.zeros(1), "payload": Evil(str(victim))}, ckpt)
    assert not victim.exists()
    result = invoke("export", ckpt, "-o", tmp_path / "out.onnx")
    assert result.exit_code == 2
    assert "refusing" in result.stderr
    assert "nothing was executed" in result.stderr
    assert not victim.exists()
    assert not (tmp_path / "out.onnx").exists()
    torch.load(ckpt, weights_only=False)  # proof that the payload is live: unsafe loading runs it
    assert victim.exists()


def test_opset_18_uses_the_dynamo_exporter_and_gets_18(tmp_path):
    torch.save(seeded(GeneratorSpec("resnet_6blocks", ngf=4)).state_dict(), tmp_path / "g.pth")
    out = export_checkpoint(tmp_path / "g.pth", tmp_path / "g18.onnx", size=32, opset=18)
    assert [o.version for o in onnx.load(str(out)).opset_import if o.domain in ("", "ai.onnx")] == [18]


@pytest.mark.parametrize("kind", ["missing", "text", "unrelated", "empty", "both-kinds"])
def test_bad_checkpoints(tmp_path, kind):
    ckpt = tmp_path / "ckpt.pth"
    args = ["export", ckpt, "-o", tmp_path / "out.onnx"]
    if kind == "text":
        ckpt.write_text("not a checkpoint")
    elif kind == "empty":
        ckpt.write_bytes(b"")
    elif kind == "unrelated":
        net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(), torch.nn.Linear(4, 2))
        torch.save({"conv1": net.state_dict()["0.weight"], "fc.weight": net.state_dict()["2.weight"]}, ckpt)
    elif kind == "both-kinds":
        args += ["--g-a", ckpt]
    result = invoke(*args)
    assert result.exit_code == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("cgsurg: error:")
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out.onnx").exists()


def test_unrelated_layout_error_lists_keys(tmp_path):
    ckpt = tmp_path / "resnet18ish.pth"
    torch.save({"conv1.weight": torch.zeros(4, 3, 7, 7), "fc.weight": torch.zeros(2, 4)}, ckpt)
    with pytest.raises(InputError, match="matches no known generator layout.*conv1.weight, fc.weight"):
        export_checkpoint(ckpt, tmp_path / "out.onnx")
