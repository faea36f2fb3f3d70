"""freeze-inputs: bind graph inputs to constants. Exact.

A conditional generator takes a control input besides the image (``style_weights`` of a
multi-style network); a deployment serves one setting, and a compiler wants the subgraph that
depends only on it (here the per-layer scale and bias of conditional instance norm) computed
once, not on every frame. The input becomes an initializer holding the value and leaves the
model's inputs; run ``fold-constants`` after it to fold what depends on it. Exact at the frozen
value: the numeric check feeds the original model that value.

``values=NAME:VALUE`` or a list ``values=[NAME:VALUE,NAME:VALUE]``; VALUE is one of

- a number, ``0.5`` or ``-1``: every element of the input's declared (static) shape;
- ``onehot:K``: zeros of the declared static shape with a 1 at flat index K;
- numbers separated by ``;``, ``0.2;0.8``: the elements of the declared static shape in
  row-major order (as many as it has);
- a ``.npy`` file path (it ends in ``.npy``): the array itself, of the input's dtype and
  declared shape (any size on a dynamic axis). An input with a dynamic axis needs a file.

NAME is the longest graph input name followed by ``:`` (names may contain ``:``). The pass
refuses (exit 2) a name that is no graph input, a value of the wrong size, shape or dtype, an
input with dynamic axes given no file, and an input that is also a graph output. A name that
is already a constant with the same value is left alone ("already frozen").
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import onnx
import onnx_graphsurgeon as gs

from graphsurgeon_cg import IOAdapter, Option, Pass, PassContext, PassResult, register_pass
from graphsurgeon_cg.core.graphutil import type_name

_ONEHOT = re.compile(r"onehot:(\d+)")


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _value_syntax(items: tuple) -> str | None:
    """Why ``values`` is refused before any graph is seen, or None."""
    if not items:
        return None  # the default; run() asks for values
    for item in items:
        # The split at each ':' (names may hold ':'; the graph decides which name is meant).
        values = [item[i + 1:] for i, ch in enumerate(item) if ch == ":" and i > 0]
        if not any(_valid(v) for v in values):
            return (f"takes NAME:VALUE items, VALUE a number, onehot:K, numbers separated by ';' or a .npy "
                    f"file; got {item!r}")
        if item.endswith(".npy") and not any(Path(v).is_file() for v in values):
            return f"item {item!r} names no readable .npy file"
    return None


def _valid(value: str) -> bool:
    return bool(_ONEHOT.fullmatch(value)) or value.endswith(".npy") or \
        all(_number(v) for v in value.split(";"))


@register_pass
class FreezeInputs(Pass):
    name = "freeze-inputs"
    summary = "Bind graph inputs to constant values (then fold-constants folds what depends on them)"
    exact = True
    reports_modified = True
    values = Option(tuple, (), "NAME:VALUE items; VALUE is a number, onehot:K, 'a;b;...' or a .npy path",
                    check=_value_syntax)

    def run(self, graph: gs.Graph, ctx: PassContext) -> PassResult:
        if not self.values:
            raise self.refuse("give values=NAME:VALUE (e.g. values=style_weights:onehot:3)")
        inputs = {t.name: t for t in graph.inputs}
        constants = {name: t for name, t in graph.tensors().items() if isinstance(t, gs.Constant)}
        outputs = {id(t) for t in graph.outputs}
        frozen: list[str] = []
        reasons = []
        for name, text in self._items([*inputs, *constants], known=list(inputs)):
            if name in constants and name not in inputs:
                const = constants[name]
                value = self._resolve(name, text, const.shape, const.dtype)
                if not np.array_equal(np.asarray(const.values), value):
                    raise self.refuse(f"'{name}' is already a constant with other values")
                reasons.append(f"'{name}' is already frozen to this value")
                continue
            tensor = inputs[name]
            if id(tensor) in outputs:
                raise self.refuse(f"input '{name}' is also a graph output; it cannot become a constant")
            value = self._resolve(name, text, tensor.shape, tensor.dtype)
            graph.inputs = [t for t in graph.inputs if t is not tensor]
            tensor.to_constant(value)  # every reader, subgraphs included, now reads the constant
            frozen.append(name)
        # The frozen inputs leave the feed (``IOAdapter.feeds``); their values are pinned for
        # every stage by ``declare_io``, which knew them before the run.
        adapter = IOAdapter(removed_inputs=tuple(frozen)) if frozen else None
        return PassResult(len(frozen), reasons, modified=bool(frozen), adapter=adapter)

    def declare_io(self, model: onnx.ModelProto) -> IOAdapter | None:
        """The inputs of ``model`` this pass binds, and their values (those it would refuse are
        left to ``run``, which says why)."""
        initializers = {t.name for t in model.graph.initializer}
        declared = {i.name: i for i in model.graph.input if i.name not in initializers}
        pins = {}
        for name, text in self._items(list(declared)):
            typed = declared[name].type.tensor_type
            shape = [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in typed.shape.dim] \
                if typed.HasField("shape") else None
            try:
                pins[name] = self._resolve(name, text, shape, onnx.helper.tensor_dtype_to_np_dtype(typed.elem_type))
            except Exception:  # run() refuses it with the reason
                continue
        return IOAdapter(removed_inputs=tuple(pins), pinned=pins) if pins else None

    # --- values ---------------------------------------------------------------------------
    def _items(self, names: list[str], known: list[str] | None = None) -> list[tuple[str, str]]:
        """(name, value text) per item: the name is the longest of ``names`` followed by ':'. An
        item naming none is refused, listing the inputs ``known``; without ``known``, skipped."""
        found = []
        for item in self.values:
            matches = [n for n in names if item.startswith(n + ":")]
            if not matches:
                if known is not None:
                    listed = ", ".join(known) or "none"
                    raise self.refuse(f"no graph input named '{item.partition(':')[0]}' (inputs: {listed})")
                continue
            name = max(matches, key=len)
            found.append((name, item[len(name) + 1:]))
        return found

    def _resolve(self, name: str, text: str, shape: list | None, dtype) -> np.ndarray:
        """The value ``text`` means for an input of declared ``shape`` and ``dtype``."""
        if dtype is None or isinstance(dtype, int):
            raise self.refuse(f"input '{name}' has type {type_name(dtype)}, which cannot be frozen")
        dtype = np.dtype(dtype)
        dims = [d if isinstance(d, int) and d >= 0 else None for d in shape] if shape is not None else None
        if text.endswith(".npy"):
            try:
                array = np.load(text, allow_pickle=False)
            except Exception as exc:
                raise self.refuse(f"cannot read {text}: {exc}") from None
            if array.dtype != dtype:
                raise self.refuse(f"{text} holds {array.dtype}, input '{name}' is {dtype} (save it with "
                                  f".astype(np.{dtype.name}))")
            if dims is not None and (array.ndim != len(dims) or any(
                    d is not None and d != a for d, a in zip(dims, array.shape))):
                raise self.refuse(f"{text} has shape {list(array.shape)}, input '{name}' is {_dims(shape)}")
            return array
        if dims is None or None in dims:
            raise self.refuse(f"input '{name}' has dynamic shape {_dims(shape)}: give its full value as a .npy file")
        static = tuple(int(d) for d in dims if d is not None)
        size = int(np.prod(static, dtype=np.int64))
        onehot = _ONEHOT.fullmatch(text)
        if onehot:
            index = int(onehot.group(1))
            if index >= size:
                raise self.refuse(f"onehot:{index} is out of range for input '{name}' of {size} elements")
            flat = np.zeros(size, dtype)
            flat[index] = 1
            return flat.reshape(static)
        numbers = [float(v) for v in text.split(";")]
        if len(numbers) not in (1, size):
            raise self.refuse(f"input '{name}' of shape {_dims(shape)} takes 1 or {size} values, got {len(numbers)}")
        array = np.asarray(numbers, np.float64)
        cast = array.astype(dtype)
        if not np.issubdtype(dtype, np.floating) and not np.array_equal(cast.astype(np.float64), array):
            raise self.refuse(f"input '{name}' is {dtype}: {text} is not representable")
        return np.broadcast_to(cast, static).copy() if len(numbers) == 1 else cast.reshape(static)


def _dims(shape: list | None) -> str:
    return "unknown" if shape is None else "[" + ",".join(str(d) if d is not None else "?" for d in shape) + "]"
