"""TF-MOT's collaborative optimization on the same model and data: prune -> cluster -> PCQAT.

Used by bench/deep_compression.py only when the [tf] extra (tensorflow, tf-keras,
tensorflow-model-optimization) is installed. TF-MOT's settings come from bench/recipes/tfmot/<arch>.yaml
(per-layer sparsities, k distinct non-zero values per layer, centroid init, epochs, learning rates,
weight decay), optionally overridden per stage (`overrides`, e.g. the same per-layer non-zero counts as
our result). k non-zero values are k + 1 TF-MOT clusters, as its sparsity-preserving clustering counts
zero as one. Weight decay is the coupled L2 of torch's Adam, added to the gradients as torch does; the
data is the same (jittered) training set. TF-MOT has no distillation: the recipe's distill epochs are
plain fine-tuning of the pruned model (masks held). The final model
is converted to an int8 TFLite file whose error is counted on the test set with the LiteRT
interpreter, and whose weights (dequantized) go through our Deep-Compression size accounting.
"""

from __future__ import annotations

import os
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import yaml

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # TF-MOT needs Keras 2 (tf-keras)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

RECIPES = Path(__file__).resolve().parents[1] / "recipes" / "tfmot"


def run_tfmot(
    arch: str,
    data: Any,
    epoch_scale: float,
    seed: int,
    baseline_epochs: float,
    overrides: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    import tensorflow as tf
    import tensorflow_model_optimization as tfmot
    import tf_keras as keras

    from edgedeploy.compress.storage import deep_compression_size

    started = time.perf_counter()
    tf.keras.utils.set_random_seed(seed)
    stages = {s["stage"]: s for s in yaml.safe_load((RECIPES / f"{arch}.yaml").read_text())["stages"]}
    for stage, params in (overrides or {}).items():
        stages[stage] = {**stages[stage], **params}
    train_x, test_x = data.train_x.transpose(0, 2, 3, 1), data.eval_x.transpose(0, 2, 3, 1)  # NCHW -> NHWC
    train_y, test_y = data.train_y, data.eval_y

    def fit(
        model: Any, epochs: float, lr: float, callbacks: list[Any] | None = None, weight_decay: float = 0.0
    ) -> None:
        def coupled_decay(pairs: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
            return [(grad + weight_decay * var, var) for grad, var in pairs]

        # The legacy Adam is the one that takes gradient transformers; the update is the same Adam.
        optimizer = keras.optimizers.legacy.Adam(
            lr, gradient_transformers=[coupled_decay] if weight_decay else None
        )
        model.compile(optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        # Fractional epochs: train on the leading share of a shuffled copy, then whole epochs.
        whole, part = int(epochs), epochs - int(epochs)
        if whole:
            model.fit(
                train_x, train_y, batch_size=128, epochs=whole, verbose=0, callbacks=callbacks, shuffle=True
            )
        if part > 0:
            n = int(part * len(train_y))
            idx = np.random.default_rng(seed).permutation(len(train_y))[:n]
            model.fit(train_x[idx], train_y[idx], batch_size=128, epochs=1, verbose=0, callbacks=callbacks)

    model = keras_model(keras, arch)
    for share, factor in [(0.6, 1.0), (0.25, 1 / 3), (0.15, 0.1)]:  # the same schedule as our baselines
        fit(model, baseline_epochs * epoch_scale * share, 1e-3 * factor)
    # Counted now: wrapping the layers for pruning below takes them over from this model.
    fp32_bytes = model.count_params() * 4

    prune = stages["prune"]
    prune_epochs = prune["epochs"] * epoch_scale
    steps = max(1, int(round(prune_epochs * len(train_y) / 128)))

    def prune_layer(layer: Any) -> Any:
        if not isinstance(layer, keras.layers.Dense | keras.layers.Conv2D):
            return layer
        final = prune.get("layer_sparsity", {}).get(layer.name, prune["sparsity"])
        schedule = tfmot.sparsity.keras.PolynomialDecay(
            0.0, final, begin_step=0, end_step=max(1, 2 * steps // 3)
        )
        return tfmot.sparsity.keras.prune_low_magnitude(layer, pruning_schedule=schedule)

    pruned = keras.models.clone_model(model, clone_function=prune_layer)
    fit(
        pruned,
        prune_epochs,
        prune["lr"],
        [tfmot.sparsity.keras.UpdatePruningStep()],
        prune.get("weight_decay", 0.0),
    )
    if "distill" in stages:  # the distill stage's training budget, as plain fine-tuning
        fit(
            pruned,
            stages["distill"]["epochs"] * epoch_scale,
            stages["distill"]["lr"],
            [tfmot.sparsity.keras.UpdatePruningStep()],
        )
    pruned = tfmot.sparsity.keras.strip_pruning(pruned)

    cluster = stages["cluster"]
    inits = tfmot.clustering.keras.CentroidInitialization
    centroid_init = {  # our init names -> TF-MOT's
        "linear": inits.LINEAR,
        "density": inits.DENSITY_BASED,
        "kmeans++": inits.KMEANS_PLUS_PLUS,
        "forgy": inits.RANDOM,
    }[cluster.get("init", "linear")]

    def cluster_layer(layer: Any) -> Any:
        if not isinstance(layer, keras.layers.Dense | keras.layers.Conv2D):
            return layer
        k = cluster.get("layer_clusters", {}).get(layer.name, cluster["clusters"])
        return tfmot.clustering.keras.cluster_weights(
            layer,
            # TF-MOT's sparsity-preserving clustering spends one of its clusters on zero; ours keeps
            # zero outside the k. One more here gives both files k distinct non-zero values.
            number_of_clusters=k + 1,
            cluster_centroids_init=centroid_init,
            preserve_sparsity=True,
        )

    clustered = keras.models.clone_model(pruned, clone_function=cluster_layer)
    fit(clustered, cluster["epochs"] * epoch_scale, cluster["lr"])
    clustered = tfmot.clustering.keras.strip_clustering(clustered)

    qat = stages["qat"]
    annotated = tfmot.quantization.keras.quantize_annotate_model(clustered)
    pcqat = tfmot.quantization.keras.quantize_apply(
        annotated, tfmot.experimental.combine.Default8BitClusterPreserveQuantizeScheme(preserve_sparsity=True)
    )
    fit(pcqat, qat["epochs"] * epoch_scale, qat["lr"])

    converter = tf.lite.TFLiteConverter.from_keras_model(pcqat)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    tflite = converter.convert()
    with tempfile.TemporaryDirectory(prefix="bench-tfmot-") as tmp:
        path = Path(tmp) / f"{arch}-tfmot.tflite"
        path.write_bytes(tflite)
        error = 100 * (1 - tflite_accuracy(path, test_x, test_y))
        weights, others = tflite_weights(path)
        zipped = Path(tmp) / "model.zip"
        with zipfile.ZipFile(zipped, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
            zf.write(path, arcname=path.name)
        zipped_bytes = zipped.stat().st_size
    size = deep_compression_size(weights, others).total_bytes
    return {
        "error_pct": round(error, 2),
        "rate": round(fp32_bytes / size, 2),
        "deep_compression_bytes": size,
        "tflite_bytes": len(tflite),
        "zipped_tflite_bytes": zipped_bytes,
        "weight_sparsity": round(
            1 - sum(np.count_nonzero(w) for w in weights.values()) / sum(w.size for w in weights.values()), 4
        ),
        "unique_per_layer": {name: int(np.unique(w).size) for name, w in weights.items()},
        "nonzeros_per_layer": {name: int(np.count_nonzero(w)) for name, w in weights.items()},
        "settings": {
            name: {k: v for k, v in stage.items() if k != "stage"} for name, stage in stages.items()
        },
        "epochs": {
            "baseline": baseline_epochs * epoch_scale,
            **{name: stage["epochs"] * epoch_scale for name, stage in stages.items()},
        },
        "seconds": round(time.perf_counter() - started, 1),
    }


def keras_model(keras: Any, arch: str) -> Any:
    """The same architectures as edgedeploy.models.zoo, in Keras (NHWC)."""
    layers = keras.layers
    if arch == "lenet300":
        body = [
            layers.Flatten(),
            layers.Dense(300, activation="relu", name="fc1"),
            layers.Dense(100, activation="relu", name="fc2"),
            layers.Dense(10, name="fc3"),
        ]
    else:
        body = [
            layers.Conv2D(20, 5, name="conv1"),
            layers.MaxPooling2D(2),
            layers.Conv2D(50, 5, name="conv2"),
            layers.MaxPooling2D(2),
            layers.Flatten(),
            layers.Dense(500, activation="relu", name="fc1"),
            layers.Dense(10, name="fc2"),
        ]
    return keras.Sequential([keras.Input((28, 28, 1)), *body])


def tflite_accuracy(path: Path, x: np.ndarray, y: np.ndarray) -> float:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    inp = interpreter.get_input_details()[0]
    interpreter.resize_tensor_input(inp["index"], [len(x), *x.shape[1:]])
    interpreter.allocate_tensors()
    interpreter.set_tensor(inp["index"], x.astype(np.float32))
    interpreter.invoke()
    logits = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    return float((logits.argmax(axis=1) == y).mean())


def tflite_weights(path: Path) -> tuple[dict[str, np.ndarray], int]:
    """Dequantized int8 weight tensors (2+ dims) of a TFLite file, and the count of int32 biases.

    Constants are told from activations by running the model: activations change, constants not.
    """
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    details = interpreter.get_tensor_details()

    def snapshot() -> dict[int, np.ndarray]:
        out = {}
        for detail in details:
            try:
                out[detail["index"]] = np.array(interpreter.get_tensor(detail["index"]))
            except ValueError:
                continue
        return out

    before = snapshot()
    inp = interpreter.get_input_details()[0]
    interpreter.set_tensor(inp["index"], np.random.default_rng(0).random(inp["shape"], dtype=np.float32))
    interpreter.invoke()
    after = snapshot()
    weights: dict[str, np.ndarray] = {}
    others = 0
    for detail in details:
        index = detail["index"]
        if index not in before or index not in after or not np.array_equal(before[index], after[index]):
            continue
        array, q = after[index], detail["quantization_parameters"]
        if array.ndim >= 2 and array.dtype == np.int8 and len(q["scales"]):
            shape = [1] * array.ndim
            shape[q["quantized_dimension"]] = len(q["scales"])
            zero = q["zero_points"].reshape(shape) if q["zero_points"].size == len(q["scales"]) else 0
            weights[detail["name"]] = (array.astype(np.float32) - zero) * q["scales"].reshape(shape)
        elif array.ndim == 1 and array.dtype == np.int32:
            others += array.size  # biases
    return weights, others
