"""The model's inputs (from .npy files or random, per the input spec) and its outputs (written as .npy)."""

import os

from . import RunnerError


def parse_shapes(specs):
    shapes = {}
    for spec in specs or []:
        name, _, dims = spec.rpartition("=")
        shapes[name] = [int(d) for d in dims.split(",") if d]
    return shapes


def make_inputs(np, specs, files, shapes, seed, notes):
    """Feeds keyed by input name: from .npy files (in order) or random from the input spec.
    What was assumed (a dynamic batch set to 1) is appended to `notes`."""
    if files and len(files) != len(specs):
        raise RunnerError("model has %d inputs but %d .npy files were given" % (len(specs), len(files)))
    names = [spec["name"] for spec in specs]
    unknown = sorted(name for name in shapes if name and name not in names)
    if unknown:
        raise RunnerError("--shape %s: no such input (inputs: %s)" % (", ".join(unknown), ", ".join(names)))
    if "" in shapes and len(specs) > 1:
        raise RunnerError(
            "--shape without a name fits one-input models; give NAME=dims for %s" % ", ".join(names)
        )
    rng = np.random.RandomState(seed)
    feeds = {}
    for i, spec in enumerate(specs):
        dtype = np.dtype(spec["dtype"])
        if files:
            try:
                arr = np.load(files[i], allow_pickle=False)
            except Exception as exc:
                raise RunnerError(
                    "cannot read input %s: not a plain .npy array (%s)" % (files[i], str(exc).split(".")[0])
                )
            _check_shape(spec, arr.shape, files[i])
            if arr.dtype != dtype:
                if arr.dtype.kind == "f" and dtype.kind in "iu" and spec.get("quantization"):
                    # Float data for a quantised input: quantise it as the converter's scale says.
                    scale, zero_point = spec["quantization"]
                    info = np.iinfo(dtype)
                    arr = np.clip(np.round(arr / scale + zero_point), info.min, info.max).astype(dtype)
                else:  # never cast silently: float64 or int32 data changes what the model computes
                    raise RunnerError(
                        "input %r wants %s but %s holds %s"
                        % (spec["name"], dtype.name, files[i], arr.dtype.name)
                    )
            feeds[spec["name"]] = arr
            continue
        shape = shapes.get(spec["name"]) or (shapes.get("") if len(specs) == 1 else None)
        if shape is None:
            dynamic = [j for j, d in enumerate(spec["shape"]) if not isinstance(d, int) or d is None or d < 0]
            if dynamic == [0] and len(spec["shape"]) > 1:
                # Only the leading (batch) axis is free, as exporters make it: one sample per inference.
                notes.append("input %r: dynamic batch dimension set to 1 (--shape to choose)" % spec["name"])
                dynamic = []
                spec = dict(spec, shape=[1] + list(spec["shape"][1:]))
            if dynamic:
                raise RunnerError(
                    "input %r has dynamic dimensions %s (shape %s); give --shape %s=%s"
                    % (
                        spec["name"],
                        dynamic,
                        spec["shape"],
                        spec["name"],
                        ",".join(str(d) if isinstance(d, int) and d >= 0 else "N" for d in spec["shape"]),
                    )
                )
            shape = spec["shape"]
        else:
            _check_shape(spec, shape, "--shape")
        if dtype.kind == "f":
            feeds[spec["name"]] = rng.standard_normal(shape).astype(dtype)
        elif dtype.kind in "iu":
            info = np.iinfo(dtype)
            feeds[spec["name"]] = rng.randint(max(info.min, -128), min(info.max, 127) + 1, size=shape).astype(
                dtype
            )
        else:
            feeds[spec["name"]] = np.zeros(shape, dtype=dtype)
    return feeds


def _check_shape(spec, shape, source):
    want = spec["shape"]
    ok = len(want) == len(shape) and all(
        (not isinstance(w, int)) or w is None or w < 0 or w == s for w, s in zip(want, shape)
    )
    if not ok:
        raise RunnerError(
            "input %r expects shape %s but %s has %s" % (spec["name"], want, source, list(shape))
        )


def save_output(np, arr, path):
    """Write one output array atomically; on failure (a full disk) remove the partial temp file."""
    tmp = path + ".tmp.npy"
    try:
        np.save(tmp, arr)
        os.replace(tmp, path)
    except OSError as exc:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise RunnerError("cannot write output %s: %s" % (path, exc.strerror or exc), kind="resource", code=1)


def safe_name(name):
    """An output name usable as a file name (ONNX names may hold '/' or ':')."""
    cleaned = "".join(c if c.isalnum() or c in "._-" else "_" for c in name).strip("._")
    return cleaned or "output"
