"""Op-coverage pre-flight: which ops of a model the chosen converter or runtime cannot handle.

It needs only an export trace (seconds), so `compress` and `convert` can refuse a model before a long
training run or conversion, instead of failing at the end.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from edgedeploy.convert.files import first_line
from edgedeploy.errors import UsageError


def check_torch(module: Any, example: np.ndarray | list[np.ndarray], to: str) -> dict[str, Any]:
    """Trace with torch.export, decompose as the converter will, look every op up in its registry.

    ONNX: torch.onnx's dynamo exporter and its torchlib registry. TFLite: litert-torch's lowering
    registry. Both private APIs are what the converters themselves call, so the verdict matches.
    """
    import torch

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            examples = example if isinstance(example, (list, tuple)) else [example]
            program = torch.export.export(
                module, tuple(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)) for x in examples)
            )
    except Exception as err:  # noqa: BLE001 - torch.export raises many internal types
        raise UsageError(f"torch.export cannot trace the model: {first_line(err)}") from err
    if to == "onnx":
        from torch.onnx._internal.exporter import _fx_passes, _registration

        registry = _registration.ONNXRegistry.from_torchlib()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = _fx_passes.decompose_with_registry(program, registry)
        # The exporter drops runtime assertions (e.g. _assert_tensor_metadata) before translating.
        ops = _call_targets(_fx_passes.remove_assertion_nodes(program.graph_module).graph)
        unsupported = sorted(str(op) for op in ops if not registry.is_registered(op))
        converter = "torch.onnx (dynamo, torchlib)"
    else:
        from edgedeploy.convert.tflite_export import require_litert_torch

        require_litert_torch()
        from litert_torch import fx_infra
        from litert_torch.backend.lowerings import registry

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = fx_infra.safe_run_decompositions(program, fx_infra.decomp.pre_convert_decomp())
            program = fx_infra.safe_run_decompositions(program, fx_infra.decomp.pre_lower_decomp())
        ops = _call_targets(program.graph)
        unsupported = sorted(str(op) for op in ops if registry.lookup(op) is None)
        converter = "litert-torch"
    return {"converter": converter, "ops_checked": len(ops), "unsupported": unsupported}


def _call_targets(graph: Any) -> set[Any]:
    import torch

    return {
        node.target
        for node in graph.nodes
        if node.op == "call_function" and isinstance(node.target, torch._ops.OpOverload)
    }


def check_onnx(path: Path) -> dict[str, Any]:
    """Every node's (domain, op) must have a schema in ONNX or in ONNX Runtime's contrib ops."""
    import onnx
    from onnxruntime.capi import onnxruntime_pybind11_state as ort_state

    model = onnx.load(str(path), load_external_data=False)
    known = {(schema.domain or "ai.onnx", schema.name) for schema in ort_state.get_all_operator_schema()}
    used = {(node.domain or "ai.onnx", node.op_type) for node in model.graph.node}
    unsupported = sorted(f"{domain}::{op}" for domain, op in used if (domain, op) not in known)
    return {"converter": "onnxruntime", "ops_checked": len(used), "unsupported": unsupported}


def check_tflite(path: Path) -> dict[str, Any]:
    """Ask the runtime: load the model in ai-edge-litert and allocate its tensors.

    A list of op names cannot say which custom ops a runtime resolves (ai-edge-litert runs MediaPipe's
    CUSTOM:Convolution2DTransposeBias, for one), so only ops the runtime itself fails on are refused."""
    from ai_edge_litert.interpreter import Interpreter

    from edgedeploy.convert.inspect import tflite_op_names

    used = set(tflite_op_names(path))
    special = sorted(op for op in used if op.startswith(("CUSTOM", "Flex")))
    report: dict[str, Any] = {"converter": "ai-edge-litert", "ops_checked": len(used), "unsupported": []}
    try:
        Interpreter(model_path=str(path)).allocate_tensors()
    except (ValueError, RuntimeError) as err:
        message = str(err)
        # LiteRT names the first op it cannot resolve; report every custom op its message names.
        report["unsupported"] = [op for op in special if op.split(":")[-1] in message] or [
            f"(cannot load: {first_line(err)})"
        ]
        return report
    if special:
        report["custom_ops_resolved"] = special
    return report


def refuse_unsupported(origin: str, report: dict[str, Any]) -> None:
    if report["unsupported"]:
        ops = ", ".join(report["unsupported"][:12])
        more = f" (+{len(report['unsupported']) - 12} more)" if len(report["unsupported"]) > 12 else ""
        raise UsageError(f"{origin}: ops not supported by {report['converter']}: {ops}{more}")
