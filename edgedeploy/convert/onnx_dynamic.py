"""Dynamic int8 ONNX with per-channel convolution weights.

ONNX Runtime's `quantize_dynamic` turns Conv into ConvInteger with ONE weight scale per tensor (its
`per_channel` flag does not reach ConvInteger). After BatchNorm folding, the output channels of a
CNN's convolutions (depthwise ones above all) differ in range by orders of magnitude, so one scale
rounds most channels to nothing: EfficientNet-Lite0 kept at most 19% top-1 agreement with
per_channel=True, per-tensor, uint8 or reduce_range weights alike (bench/int8_dynamic_configs.py;
docs/convert.md has the table).

Here each Conv becomes: DynamicQuantizeLinear(x) -> ConvInteger(x_u8, w_u8) -> Cast -> Mul by
x_scale * w_scale[c] -> Add bias. The weights are quantized symmetrically to -127..127 per output
channel and stored shifted by a single zero point of 128, so every channel shares one zero point and
its own scale can be applied after the integer convolution with plain ONNX ops; activations are still
quantized at run time, per tensor. (The same levels stored as int8 give identical outputs, but ORT's
u8s8 ConvInteger kernel is several times slower than its u8u8 one: the benchmark measures both.)
MatMul/Gemm go through `quantize_dynamic` (per-channel works there).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

WEIGHT_ZERO_POINT = "edgedeploy_conv_weight_zero_point"


def quantize_convs_per_channel(src: Path, out: Path, include_grouped: bool = False) -> int:
    """Rewrite each ungrouped Conv with constant weights as a per-channel dynamic int8 convolution.

    Grouped (depthwise) convolutions stay float unless `include_grouped`: ORT's ConvInteger has no
    depthwise kernel, and on EfficientNet-Lite0 quantizing them made the model 2-3x slower
    (bench/int8_dynamic_configs.py measures it). Returns how many convolutions were rewritten."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(src))
    graph = model.graph
    weights = {t.name: t for t in graph.initializer}
    nodes: list[Any] = []
    quantized_inputs: dict[str, tuple[str, str, str]] = {}  # one DynamicQuantizeLinear per tensor
    rewritten = 0
    graph.initializer.append(numpy_helper.from_array(np.array(128, np.uint8), WEIGHT_ZERO_POINT))
    for index, node in enumerate(graph.node):
        has_bias = len(node.input) > 2 and bool(node.input[2])
        grouped = any(a.name == "group" and a.i > 1 for a in node.attribute)
        if (
            node.op_type != "Conv"
            or (grouped and not include_grouped)  # depthwise: ORT has no fast ConvInteger for it
            or any(name not in weights for name in node.input[1 : 3 if has_bias else 2])  # run-time weights
        ):
            nodes.append(node)
            continue
        rewritten += 1
        prefix = f"{node.name or node.output[0]}_dyn{index}"
        weight = numpy_helper.to_array(weights[node.input[1]]).astype(np.float32)
        channels = weight.shape[0]
        per_channel = (1, channels, *([1] * (weight.ndim - 2)))  # broadcasts over N, C, spatial...
        scale = np.abs(weight.reshape(channels, -1)).max(axis=1) / 127.0
        scale[scale == 0] = 1.0  # an all-zero channel (pruned) stays zero with any scale
        levels = np.round(weight / scale.reshape(channels, *([1] * (weight.ndim - 1))))
        stored = (np.clip(levels, -127, 127) + 128).astype(np.uint8)
        graph.initializer.extend(
            [
                numpy_helper.from_array(stored, f"{prefix}_w_u8"),
                numpy_helper.from_array(scale.reshape(per_channel).astype(np.float32), f"{prefix}_w_scale"),
            ]
        )
        source = node.input[0]
        if source not in quantized_inputs:
            quantized_inputs[source] = (f"{source}_dyn_u8", f"{source}_dyn_scale", f"{source}_dyn_zp")
            nodes.append(helper.make_node("DynamicQuantizeLinear", [source], list(quantized_inputs[source])))
        x_u8, x_scale, x_zero_point = quantized_inputs[source]
        attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        scaled = f"{prefix}_scaled" if has_bias else node.output[0]
        nodes += [
            helper.make_node(
                "ConvInteger",
                [x_u8, f"{prefix}_w_u8", x_zero_point, WEIGHT_ZERO_POINT],
                [f"{prefix}_int32"],
                **attributes,
            ),
            helper.make_node("Cast", [f"{prefix}_int32"], [f"{prefix}_float"], to=onnx.TensorProto.FLOAT),
            helper.make_node("Mul", [x_scale, f"{prefix}_w_scale"], [f"{prefix}_scale"]),
            helper.make_node("Mul", [f"{prefix}_float", f"{prefix}_scale"], [scaled]),
        ]
        if has_bias:
            bias = numpy_helper.to_array(weights[node.input[2]]).astype(np.float32).reshape(per_channel)
            graph.initializer.append(numpy_helper.from_array(bias, f"{prefix}_bias"))
            nodes.append(helper.make_node("Add", [scaled, f"{prefix}_bias"], [node.output[0]]))
    del graph.node[:]
    graph.node.extend(nodes)
    used = {name for node in graph.node for name in node.input}
    kept = [t for t in graph.initializer if t.name in used]  # drop the fp32 weights now unused
    del graph.initializer[:]
    graph.initializer.extend(kept)
    onnx.save(model, str(out))
    return rewritten
