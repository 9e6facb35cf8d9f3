"""Every ONNX graph a bundle carries is written here: one exporter, one set of options.

:func:`export_onnx` traces a module (the TorchScript exporter, ``dynamo=False``, opset
:data:`OPSET`) with named inputs and outputs; axes named in ``dynamic`` are free (a batch), every
other axis is fixed to the example's size (static shapes: the runtime graphs of the visual world
model are batch 1). The written file must pass ``onnx.checker``; the io spec it returns for the
bundle manifest (``{"inputs": {name: {"shape", "dtype"}}, "outputs": ...}``, a free axis as -1)
is read off the example inputs and the module's outputs on them, so it cannot drift from the graph.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

OPSET = 17


def export_onnx(module: Any, args: tuple, path: str | Path, inputs: list[str], outputs: list[str],
                dynamic: dict[str, dict[int, str]] | None = None) -> dict[str, Any]:
    """Write ``module(*args)`` as an ONNX graph to ``path`` (the module is put in eval mode); check it
    with ``onnx.checker``; return its io spec (``dynamic``: ``{name: {axis: label}}`` of free axes)."""
    import onnx
    import torch

    module = module.eval()
    dynamic = dynamic or {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, args, str(path), dynamo=False, opset_version=OPSET, input_names=inputs,
                          output_names=outputs, dynamic_axes=dynamic)
    onnx.checker.check_model(str(path))
    with torch.no_grad():
        result = module(*(a.clone() for a in args))  # copies: a module may write into its inputs (a cache)
    results = result if isinstance(result, (tuple, list)) else (result,)
    if len(results) != len(outputs):
        raise ValueError(f"{type(module).__name__} returns {len(results)} outputs, named {outputs}")

    def spec(names: list[str], tensors: Any) -> dict[str, dict[str, Any]]:
        return {n: {"shape": [-1 if ax in dynamic.get(n, {}) else int(d) for ax, d in enumerate(t.shape)],
                    "dtype": str(t.dtype).removeprefix("torch.")} for n, t in zip(names, tensors)}

    return {"inputs": spec(inputs, args), "outputs": spec(outputs, results)}
