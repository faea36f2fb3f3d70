"""Loading and saving ONNX models: clear errors on bad files, external data, atomic writes.

Every model cgsurg reads or writes goes through here, so that a bad input gives one clear
line and an interrupted or failed run never leaves a partial output file behind.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import onnx
from google.protobuf.message import DecodeError

from .errors import InputError, first_line

# Protobuf cannot serialise a message of 2 GiB or more; stay clear of the limit.
PROTOBUF_LIMIT = 2**31 - 2**26
# External tensors up to this size are read into memory on load (passes may read them: pads,
# shapes, small weights); larger ones stay on disk, referenced by absolute path, until saved.
LAZY_BYTES = 64 * 2**20
COPY_CHUNK = 64 * 2**20
LONG_VECTOR = 2**16  # elements: longer one-dimensional weights are given a symbolic length for inference


def load_model(path: str | os.PathLike) -> onnx.ModelProto:
    """Read and validate an ONNX model. External data up to ``LAZY_BYTES`` per tensor is read
    in; larger tensors stay on disk (their location made absolute) and are copied, not loaded,
    when the model is saved or run: a model over 2 GB never passes through one protobuf."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"no such file: {path}")
    if path.is_dir():
        raise InputError(f"{path} is a directory, expected an .onnx file")
    if path.stat().st_size == 0:
        raise InputError(f"{path} is empty")
    try:
        model = onnx.load(str(path), load_external_data=False)
        _resolve_external_data(model, path.resolve().parent)
    except (DecodeError, RuntimeError, ValueError, OSError) as exc:
        raise InputError(f"{path} is not a readable ONNX model ({first_line(exc)})") from None
    if not model.HasField("graph") or len(model.graph.node) == 0:
        raise InputError(f"{path} is not an ONNX model (no graph with nodes found)")
    try:
        onnx.checker.check_model(weightless(model))
    except (onnx.checker.ValidationError, ValueError) as exc:
        raise InputError(f"{path} is not a valid ONNX model: {first_line(exc)}") from None
    return model


def fits_in_protobuf(model: onnx.ModelProto) -> bool:
    """Whether ``model`` can be serialised in one piece (its weights are most of its size)."""
    weights = sum(len(t.raw_data) for t in model.graph.initializer)
    if weights < PROTOBUF_LIMIT - 2**26:  # ample headroom: skip ByteSize, which walks the whole model
        return True
    return weights < PROTOBUF_LIMIT and model.ByteSize() < PROTOBUF_LIMIT


def weightless(model: onnx.ModelProto, threshold: int = 1024) -> onnx.ModelProto:
    """A copy of ``model`` whose large initializers are typed graph inputs instead.

    The ONNX checker and shape inference serialise the whole model on every call; without the
    weights that costs microseconds instead of a copy of every weight, works past 2 GB, and
    gives the same verdict: weights only matter through their types and shapes, and the small
    constants that shape inference reads (shapes, scales, pads) stay.
    """
    skeleton = onnx.ModelProto(ir_version=model.ir_version, producer_name=model.producer_name,
                               producer_version=model.producer_version, domain=model.domain,
                               model_version=model.model_version)
    skeleton.opset_import.extend(model.opset_import)
    skeleton.functions.extend(model.functions)
    src, dst = model.graph, skeleton.graph
    dst.name, dst.doc_string = src.name, src.doc_string
    for field in ("node", "input", "output", "value_info", "sparse_initializer", "quantization_annotation"):
        getattr(dst, field).extend(getattr(src, field))
    declared = {i.name for i in src.input}
    for tensor in src.initializer:
        if len(tensor.raw_data) <= threshold and tensor.data_location != onnx.TensorProto.EXTERNAL:
            dst.initializer.append(tensor)
        elif tensor.name not in declared:
            dims: list = list(tensor.dims)
            if len(dims) == 1 and dims[0] > LONG_VECTOR:
                # Data propagation reads a one-dimensional tensor as shape data and builds one
                # protobuf dimension per element (3.4 GB for a 49M-element table read by a
                # Gather): a symbol keeps its rank without that cost.
                dims = [f"cgsurg_len_{tensor.name}"]
            dst.input.append(onnx.helper.make_tensor_value_info(tensor.name, tensor.data_type, dims))
    return skeleton


def default_opset(model: onnx.ModelProto) -> int:
    """The model's opset of the default ONNX domain (0 when it imports none)."""
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def check_writable(path: str | os.PathLike) -> Path:
    """Fail early, before any work, when ``path`` cannot be written."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise InputError(f"output {path} is a directory, expected a file name")
    if not parent.is_dir():
        raise InputError(f"output directory {parent} does not exist")
    _probe(parent, f"output directory {parent} is not writable")
    return path


def _probe(folder: Path, message: str) -> None:
    """Create and remove a file in ``folder``: permission bits say little to root or on
    read-only mounts."""
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise InputError(f"{message} ({exc.strerror or exc})") from None


def check_output_folder(folder: str | os.PathLike) -> Path:
    """Fail early, before any work, when an output folder cannot be made or written; returns
    the folder that staging happens in (``folder`` itself when it exists, else its nearest
    existing ancestor, where the missing folders will be created)."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{folder} is not a folder")
    base = folder.absolute()
    while not base.exists():
        base = base.parent
    if not base.is_dir():
        raise InputError(f"cannot create the folder {folder}: {base} is a file")
    _probe(base, f"cannot write in {base}")
    return base


@contextlib.contextmanager
def staged_folder(target: str | os.PathLike, keep: Callable[[BaseException], bool] | None = None,
                  replace: bool = False) -> Iterator[Path]:
    """Write a command's output folder so that a failure leaves no new file or folder.

    Yields a fresh hidden folder ``.NAME.tmp-XXXX`` next to ``target`` (inside it when it
    exists already) to write everything in. On success its contents are put in place: the
    folder is renamed to ``target``, or, when ``target`` exists, its files are moved in (each
    replacing a file of the same name, atomically). On any failure, Ctrl-C included, the
    staging folder is removed; unless ``keep(error)`` says the partial output explains the
    failure (a report of a failed verdict), in which case it is put in place as on success.
    With ``replace``, an existing ``target`` is replaced whole instead (staging beside it), so
    no file of an earlier run is left among the new ones.
    """
    target = Path(target)
    base = check_output_folder(target)
    if replace and target.is_dir():
        base = check_output_folder(target.absolute().parent)
    while True:  # os.mkdir, unlike mkdtemp, gives the folder the user's usual permissions
        staging = base / f".{target.name or 'out'}.tmp-{secrets.token_hex(4)}"
        try:
            os.mkdir(staging)
            break
        except FileExistsError:
            continue
        except OSError as exc:
            raise InputError(f"cannot write in {base} ({exc.strerror or exc})") from None
    try:
        yield staging
    except BaseException as exc:
        if keep is not None and keep(exc):
            with contextlib.suppress(InputError):  # the run's own error is the one to show
                _commit(staging, target, replace)
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _commit(staging, target, replace)


def _commit(staging: Path, target: Path, replace: bool = False) -> None:
    missing = [p for p in (target.absolute(), *target.absolute().parents) if not p.exists()]
    try:
        if replace and target.is_dir() and staging.parent != target.absolute():
            # the old folder is moved aside first: for a moment there is no folder, never a mixed one
            old = staging.with_name(staging.name.replace(".tmp-", ".old-"))
            os.rename(target, old)
            try:
                os.rename(staging, target)
            except OSError:
                os.rename(old, target)
                raise
            shutil.rmtree(old, ignore_errors=True)
            return
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.rename(staging, target)
                return
            except OSError:
                if not target.is_dir():  # not a folder that appeared meanwhile: a real failure
                    raise
        _merge(staging, target)
        shutil.rmtree(staging, ignore_errors=True)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        for folder in missing:  # the folders made for the output, deepest first
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise InputError(f"cannot write {target}: {exc.strerror or exc}") from None


def _merge(src: Path, dst: Path) -> None:
    for entry in sorted(src.iterdir()):
        dest = dst / entry.name
        if entry.is_dir() and dest.is_dir() and not dest.is_symlink():
            _merge(entry, dest)
        else:  # replaces the name, never writes through it: a hard link elsewhere keeps its data
            os.replace(entry, dest)


def within(path: str | os.PathLike, folder: str | os.PathLike) -> bool:
    """Whether ``path`` is ``folder`` or lies inside it, through symlinks and ``..``."""
    folder = Path(folder)
    if not folder.is_dir():
        return False
    resolved = Path(path).resolve()
    return any(candidate.exists() and os.path.samefile(candidate, folder)
               for candidate in (resolved, *resolved.parents))


def save_model(model: onnx.ModelProto, path: str | os.PathLike, external_data: bool | None = None) -> Path:
    """Write ``model`` atomically; weights go to ``<name>.data`` when large, when they are on
    disk already (copied in chunks, never loaded whole), or when asked.

    Everything is written inside a temporary directory next to the target and renamed into
    place only once complete, data file first, so readers never see a half-written model.
    """
    path = check_writable(path)
    if external_data is None:
        external_data = has_external_data(model) or not fits_in_protobuf(model)
    data_name = path.name + ".data"
    try:
        with tempfile.TemporaryDirectory(dir=path.parent, prefix=f".{path.name}.") as tmp:
            tmp_model = Path(tmp) / path.name
            if external_data:
                model = _externalised(model, Path(tmp) / data_name, data_name)
            if onnx.serialization.registry.get_format_from_file_extension(path.suffix) in (None, "protobuf"):
                # The bytes themselves: onnx.save_model also walks every tensor, attributes
                # included, for external data to write (0.4 s at 100k nodes); none is left.
                tmp_model.write_bytes(model.SerializeToString())
            else:  # a text format named by the extension (.json, .textproto, ...)
                onnx.save_model(model, str(tmp_model))
            if external_data:
                os.replace(Path(tmp) / data_name, path.parent / data_name)
            os.replace(tmp_model, path)
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path


def has_external_data(model: onnx.ModelProto) -> bool:
    return any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer)


def external_location(tensor: onnx.TensorProto) -> tuple[str, int, int | None]:
    """(location, offset, length) of an external tensor."""
    info = {e.key: e.value for e in tensor.external_data}
    length = info.get("length")
    return info.get("location", ""), int(info.get("offset", 0)), int(length) if length else None


def _set_location(tensor: onnx.TensorProto, location: str, offset: int, length: int) -> None:
    del tensor.external_data[:]
    tensor.data_location = onnx.TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", str(offset)), ("length", str(length))):
        tensor.external_data.add(key=key, value=value)


def _resolve_external_data(model: onnx.ModelProto, base: Path) -> None:
    """Read small external tensors in; give large ones an absolute location (checked)."""
    for tensor in model.graph.initializer:
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        location, offset, length = external_location(tensor)
        file = Path(location) if os.path.isabs(location) else base / location
        if not file.is_file():
            raise InputError(f"external data file {file} of tensor '{tensor.name}' is missing")
        size = file.stat().st_size
        if length is None:
            length = size - offset
        if offset + length > size:
            raise InputError(f"external data file {file} is too short for tensor '{tensor.name}'")
        if length <= LAZY_BYTES:
            with open(file, "rb") as f:
                f.seek(offset)
                data = f.read(length)
            del tensor.external_data[:]
            tensor.data_location = onnx.TensorProto.DEFAULT
            tensor.raw_data = data
        else:
            _set_location(tensor, str(file.resolve()), offset, length)


def _externalised(model: onnx.ModelProto, data_path: Path, data_name: str) -> onnx.ModelProto:
    """A copy of ``model`` whose large tensors live in ``data_path`` (written here): in-memory
    ones written out, on-disk ones copied in chunks from their absolute locations."""
    out = onnx.ModelProto()
    out.CopyFrom(model)  # on-disk tensors are references: the copy is small unless weights are in memory
    offset = 0
    with open(data_path, "wb") as data:
        for tensor in out.graph.initializer:
            if tensor.data_location == onnx.TensorProto.EXTERNAL:
                location, start, length = external_location(tensor)
                length = length if length is not None else os.path.getsize(location) - start
                with open(location, "rb") as src:
                    src.seek(start)
                    left = length
                    while left:
                        chunk = src.read(min(COPY_CHUNK, left))
                        if not chunk:
                            raise InputError(f"external data {location} ended early")
                        data.write(chunk)
                        left -= len(chunk)
            elif len(tensor.raw_data) > 1024:
                length = len(tensor.raw_data)
                data.write(tensor.raw_data)
                tensor.ClearField("raw_data")
            else:
                continue
            _set_location(tensor, data_name, offset, length)
            offset += length
            pad = -offset % 4096  # keep tensors page-aligned, as onnx does, for memory mapping
            data.write(b"\0" * pad)
            offset += pad
    return out


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether two paths name one file: through symlinks, hard links and ``..``."""
    a, b = Path(a), Path(b)
    if a.exists() and b.exists():
        return os.path.samefile(a, b)
    return a.resolve() == b.resolve()


def all_graphs(graph: onnx.GraphProto) -> Iterator[onnx.GraphProto]:
    """``graph`` and the If/Loop/Scan bodies in its nodes' attributes, at any depth."""
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            for body in [attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs):
                yield from all_graphs(body)


def constant_values(graph: onnx.GraphProto) -> dict:
    """Name -> numpy value of the initializers and Constant-node (``value``) tensors of ``graph``
    and its bodies."""
    found = {t.name: onnx.numpy_helper.to_array(t) for g in all_graphs(graph) for t in g.initializer}
    for g in all_graphs(graph):
        for node in g.node:
            if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
                found[node.output[0]] = onnx.numpy_helper.to_array(node.attribute[0].t)
    return found
