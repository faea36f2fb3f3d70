"""Checkpoint -> ONNX: safe loading, layout auto-detection, export, verification in ORT.

A checkpoint from junyanz/pytorch-CycleGAN-and-pix2pix (``latest_net_G_A.pth``, or a
pretrained ``latest_net_G.pth``) is loaded with ``torch.load(weights_only=True)`` (nothing in
it is executed), unwrapped (``state_dict``/``model``/``netG``... wrappers, DataParallel's
``module.`` prefixes, legacy InstanceNorm running statistics), matched against the official
generator layouts, rebuilt with ``graphsurgeon_cg.architectures``, exported and verified:
ONNX Runtime's output must match PyTorch's within 1e-4, or no file is written.

Exporter: PyTorch's TorchScript exporter for opsets below 18 (the vendor flow wants 11); the
newer dynamo exporter asked for opset 11 silently writes opset 18 (its down-conversion of Pad
fails), so it is used only from opset 18 on.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from ..check.session import make_session
from ..core.errors import CgsurgError, InputError, first_line
from ..core.modelio import check_writable, default_opset, load_model, same_file, save_model, staged_folder
from .architectures import NORMS, GeneratorSpec, build_generator

MAX_ABS = 1e-4
WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "netG", "netG_A", "netG_B", "generator", "G", "params",
                "ema")
LEGACY_NORM_SUFFIXES = (".running_mean", ".running_var", ".num_batches_tracked")
# The vendor guide's names: G_A maps satellite -> map, G_B map -> satellite.
VENDOR_NAMES = {"a": ("img_sat_maps", "maps", "model_Ga.onnx"), "b": ("img_maps_sat", "sat", "model_Gb.onnx")}


class ExportFailed(CgsurgError):
    exit_code = 1


def load_state_dict(path: str | os.PathLike, notice: Callable[[str], None] = lambda m: None) -> dict:
    """The tensors of a checkpoint, unwrapped and without DataParallel prefixes."""
    import pickle

    import torch

    path = Path(path)
    if not path.is_file():
        raise InputError(f"no such checkpoint file: {path}" if not path.exists() else f"{path} is not a file")
    if path.stat().st_size == 0:
        raise InputError(f"{path} is empty")
    try:
        with warnings.catch_warnings():  # torch warns before refusing a pickle; our one line says it all
            warnings.simplefilter("ignore")
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        not_checkpoint = _not_a_checkpoint(path)
        if not_checkpoint:
            raise InputError(not_checkpoint) from None
        if not isinstance(exc, pickle.UnpicklingError):
            reason = first_line(exc, limit=200)
            raise InputError(f"{path} is not a PyTorch checkpoint ({reason})") from None
        text = str(exc)
        if "Weights only load failed" in text or "weights_only" in text:
            found = re.search(r"(Unsupported global: GLOBAL [^\s]+|Unsupported operand \d+"
                              r"|[A-Z]\w+ is not an allowed global)", text)
            what = found.group(1) if found else "not a plain weights file"
            raise InputError(f"refusing {path}: unpickling it would run code or build objects other than tensors "
                             f"({what}); nothing was executed") from None
        raise InputError(f"{path} is not a PyTorch checkpoint ({text.splitlines()[0][:200]})") from None
    state = _unwrap(obj, path)
    if any(k.startswith("module.") for k in state):
        notice("stripped DataParallel 'module.' prefixes")
        state = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}
    return state


def _not_a_checkpoint(path: Path) -> str | None:
    """Why ``path`` cannot be a checkpoint at all, judged by its first bytes (torch.save writes a
    zip archive, older versions a pickle), or None when it might be one."""
    with open(path, "rb") as f:
        head = f.read(4)
    if head.startswith(b"PK") or head[:1] == b"\x80":
        return None
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:
        model = None
    if model is not None and model.HasField("graph") and len(model.graph.node) > 0:
        return f"{path} is an ONNX model, not a PyTorch checkpoint: it needs no export"
    return f"{path} is not a PyTorch checkpoint (neither the zip archive of torch.save nor a pickle)"


def _unwrap(obj, path: Path) -> dict:
    import torch

    def is_state(d) -> bool:
        return isinstance(d, dict) and bool(d) and all(isinstance(v, torch.Tensor) for v in d.values())

    if is_state(obj):
        return dict(obj)
    if isinstance(obj, dict):
        for key in WRAPPER_KEYS:
            if is_state(obj.get(key)):
                return dict(obj[key])
        nested = [v for v in obj.values() if is_state(v)]
        if len(nested) == 1:
            return dict(nested[0])
    raise InputError(f"{path} holds no state_dict (expected a dict of tensors, or one under "
                     f"{', '.join(WRAPPER_KEYS[:4])}, ...)")


def detect_spec(state: dict, arch: str | None = None, ngf: int | None = None, norm: str | None = None,
                use_dropout: bool | None = None) -> GeneratorSpec:
    """Architecture, ngf, norm and dropout from the keys and shapes; each can be forced."""
    keys = set(state)
    if arch is not None and not re.fullmatch(r"resnet_\d+blocks|unet_(32|64|128|256|512)", arch):
        raise InputError(f"unknown architecture {arch!r}: expected resnet_<n>blocks (e.g. resnet_9blocks) "
                         "or unet_128/unet_256")
    found = "resnet" if "model.1.weight" in keys else "unet" if "model.model.0.weight" in keys else None
    family = arch.split("_")[0] if arch else found
    if found is None:
        raise InputError("the checkpoint matches no known generator layout (no model.1.weight or "
                         f"model.model.0.weight); keys: {_key_list(keys)}")
    if family != found:
        raise InputError(f"architecture {arch} does not fit the checkpoint: it holds a {found} generator")
    if family == "resnet":
        first = state["model.1.weight"]
        blocks = {int(m.group(1)) for k in keys if (m := re.match(r"model\.(\d+)\.conv_block\.", k))}
        detected_arch = f"resnet_{len(blocks)}blocks"
        # Dropout shifts the second conv of each block from index 5 to 6 (with batch norm, index
        # 6 also holds a norm, but its weight is 1-D).
        detected_dropout = any(k.endswith(".conv_block.6.weight") and state[k].dim() == 4 for k in keys)
        norm_prefix, conv_bias_key = "model.2", "model.1.bias"
        last_conv = max((int(m.group(1)) for k in keys if (m := re.fullmatch(r"model\.(\d+)\.weight", k))), default=1)
        output_nc = state[f"model.{last_conv}.weight"].shape[0]
    else:
        first = state["model.model.0.weight"]
        # Level k of the U-Net (0 = outermost) has keys with k + 2 "model." segments.
        num_downs = max(k.count("model.") for k in keys if k.startswith("model.model.")) - 1
        detected_arch = f"unet_{2 ** num_downs}"
        detected_dropout = False  # U-Net dropout has no parameters and is off in eval: it changes nothing
        norm_prefix, conv_bias_key = "model.model.1.model.2", "model.model.1.model.1.bias"
        output_nc = state["model.model.3.weight"].shape[1] if "model.model.3.weight" in keys else 3
    if f"{norm_prefix}.weight" in keys:
        detected_norm = "batch" if f"{norm_prefix}.running_mean" in keys else "instance_affine"
    else:
        detected_norm = "instance" if conv_bias_key in keys else "none"
    return GeneratorSpec(arch=arch or detected_arch, ngf=ngf or int(first.shape[0]), norm=norm or detected_norm,
                         use_dropout=detected_dropout if use_dropout is None else use_dropout,
                         input_nc=int(first.shape[1]), output_nc=int(output_nc))


def build_from_state(state: dict, spec: GeneratorSpec, notice: Callable[[str], None] = lambda m: None):
    """The generator with ``state`` loaded strictly; a clear error lists keys that did not fit."""
    if spec.norm not in NORMS:
        raise InputError(f"unknown norm {spec.norm!r}: expected one of {', '.join(NORMS)}")
    model = build_generator(spec)
    expected = model.state_dict()
    if spec.norm.startswith("instance"):
        legacy = [k for k in state if k.endswith(LEGACY_NORM_SUFFIXES) and k not in expected]
        if legacy:
            notice(f"dropped {len(legacy)} legacy InstanceNorm running-statistics keys")
            state = {k: v for k, v in state.items() if k not in legacy}
    unexpected = sorted(set(state) - set(expected))
    missing = sorted(set(expected) - set(state))
    wrong = sorted(k for k in set(state) & set(expected) if tuple(state[k].shape) != tuple(expected[k].shape))
    if unexpected or missing or wrong:
        parts = [f"{label}: {_key_list(ks)}" for label, ks in
                 (("unexpected keys", unexpected), ("missing keys", missing), ("wrong shapes", wrong)) if ks]
        raise InputError(f"the checkpoint does not fit {spec.describe()} ({'; '.join(parts)})")
    model.load_state_dict(state, strict=True)
    return model.eval()


def export_checkpoint(
    checkpoint: str | os.PathLike,
    output: str | os.PathLike,
    *,
    opset: int = 11,
    input_name: str = "input",
    output_name: str = "output",
    batch: int | None = None,
    size: int = 256,
    arch: str | None = None,
    ngf: int | None = None,
    norm: str | None = None,
    use_dropout: bool | None = None,
    notice: Callable[[str], None] = lambda m: None,
) -> Path:
    """Export a generator checkpoint to ONNX and verify it against PyTorch.

    ``batch=None`` keeps axis 0 dynamic (the vendor guide's export); an int fixes it. Returns the
    written path; nothing is written if verification fails.
    """
    check_export_options(opset=opset, batch=batch, size=size)
    if same_file(checkpoint, output):
        raise InputError(f"the output {output} is the checkpoint itself; refusing to overwrite it")
    output = check_writable(output)
    state = load_state_dict(checkpoint, notice)
    spec = detect_spec(state, arch, ngf, norm, use_dropout)
    if spec.family == "unet" and size % 2**spec.depth:
        raise InputError(f"image size {size} is not divisible by {2**spec.depth}, as {spec.arch} needs")
    notice(f"architecture: {spec.describe()}")
    model = build_from_state(state, spec, notice)
    import torch

    torch.manual_seed(0)
    dummy = torch.randn(batch or 1, spec.input_nc, size, size)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "export.onnx"
        _torch_export(model, dummy, raw, opset, input_name, output_name, dynamic=batch is None)
        onnx_model = load_model(raw)
    got = default_opset(onnx_model)
    if got != opset:
        raise ExportFailed(f"the exporter wrote opset {got}, not the requested {opset}")
    check_batch = batch or 2  # a dynamic model is checked at batch 2, proving the axis is dynamic
    x = torch.from_numpy(
        np.random.default_rng(0).uniform(-1, 1, (check_batch, spec.input_nc, size, size)).astype(np.float32))
    with torch.no_grad():
        expected = model(x).numpy()
    actual = make_session(onnx_model).run(None, {input_name: x.numpy()})[0]
    diff = float(np.abs(expected - actual).max())
    notice(f"verified: ONNX Runtime vs PyTorch max abs diff {diff:.3g} (limit {MAX_ABS:g}) at batch {check_batch}")
    if not diff <= MAX_ABS:
        raise ExportFailed(f"ONNX Runtime output differs from PyTorch by {diff:.3g} > {MAX_ABS:g}; nothing written")
    return save_model(onnx_model, output)


def check_export_options(opset: int = 11, batch: int | None = None, size: int = 256) -> None:
    """What every export needs, checked before any work."""
    for name, value in (("opset", opset), ("batch size", batch), ("image size", size)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise InputError(f"the {name} must be an integer, got {value!r}")
    if opset < 7 or opset > 23:
        raise InputError(f"opset {opset} is outside 7..23")
    if batch is not None and batch < 1:
        raise InputError(f"the batch size must be at least 1, got {batch}")
    if size < 16 or size % 8:
        raise InputError(f"image size {size} must be a multiple of 8, at least 16")


def export_pair(g_a: str | os.PathLike | None, g_b: str | os.PathLike | None, out_dir: str | os.PathLike,
                notice: Callable[[str], None] = lambda m: None, **options) -> list[Path]:
    """G_A -> ``model_Ga.onnx`` (img_sat_maps -> maps), G_B -> ``model_Gb.onnx`` (img_maps_sat -> sat).
    Both are written, or neither (nor the folder)."""
    out_dir = Path(out_dir)
    pairs = [(VENDOR_NAMES[which], which, ckpt) for which, ckpt in (("a", g_a), ("b", g_b)) if ckpt is not None]
    for (_, _, filename), _, checkpoint in pairs:
        if same_file(checkpoint, out_dir / filename):
            raise InputError(f"the output {out_dir / filename} is the checkpoint itself; refusing to overwrite it")
    with staged_folder(out_dir) as staging:
        for (input_name, output_name, filename), which, checkpoint in pairs:
            names: dict[str, Any] = {"input_name": input_name, "output_name": output_name}
            names.update({k: v for k, v in options.items() if k in names and v})
            rest = {k: v for k, v in options.items() if k not in names}
            notice(f"G_{which.upper()}: {checkpoint} -> {out_dir / filename}")
            export_checkpoint(checkpoint, staging / filename, notice=notice, **names, **rest)
    return [out_dir / filename for (_, _, filename), _, _ in pairs]


def _torch_export(model, dummy, path: Path, opset: int, input_name: str, output_name: str, dynamic: bool) -> None:
    import torch

    axes = {input_name: {0: "batch"}, output_name: {0: "batch"}} if dynamic else None
    quiet = io.StringIO()
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(quiet):
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (dummy,), str(path), opset_version=opset, dynamo=opset >= 18,
                              input_names=[input_name], output_names=[output_name], dynamic_axes=axes,
                              external_data=False)
    except Exception as exc:
        reason = first_line(exc)
        raise ExportFailed(f"torch.onnx.export failed at opset {opset}: {reason}") from None


def _key_list(keys, limit: int = 8) -> str:
    keys = sorted(keys)
    return ", ".join(keys[:limit]) + (f" and {len(keys) - limit} more" if len(keys) > limit else "")
