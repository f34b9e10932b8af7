"""Hinton et al.'s MNIST distillation, re-run: a 2x800 student with and without a 2x1200 teacher.

    python bench/distillation.py [--quick] [--temperature 20] [--alpha 0.9] [--seed N]

The teacher (2x1200 ReLU, dropout) trains on the training set plus copies jittered by up to 2 pixels,
as in the paper. Two 2x800 students train from the same initialisation for the same steps on the
plain training set: one on the labels only, one with the Hinton loss (soft targets at temperature T,
weight alpha; edgedeploy/compress/distill.py). Errors are counted on the 10k test set by running each
model's exported ONNX file in onnxruntime. Goal (issue 3): >= 30% fewer errors with KD.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from common import jittered, mnist, train_baseline
from torch import nn

from edgedeploy.compress.distill import frozen_copy, hinton_loss
from edgedeploy.compress.survival import export_onnx, onnx_accuracy
from edgedeploy.models.zoo import mlp_student, mlp_teacher
from edgedeploy.train import seed_everything, train


def onnx_errors(model: nn.Module, x: np.ndarray, y: np.ndarray, tmp: Path, name: str) -> int:
    path = export_onnx(model, torch.as_tensor(x[:1]), tmp / f"{name}.onnx")
    return int(round((1 - onnx_accuracy(path, x, y)) * len(y)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="Tiny smoke run (figures mean nothing).")
    parser.add_argument("--temperature", type=float, default=20.0)
    parser.add_argument("--alpha", type=float, default=0.9, help="Weight of the soft targets.")
    parser.add_argument("--teacher-epochs", type=float, default=6.0)
    parser.add_argument(
        "--teacher-jitter", type=int, default=2, help="Shifted copies of the data for the teacher."
    )
    parser.add_argument("--student-epochs", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (1 is fastest on a busy machine)."
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    train_x, train_y, test_x, test_y = mnist(
        600 if args.quick else None, 300 if args.quick else None, args.seed
    )
    scale = 0.1 if args.quick else 1.0
    log = lambda msg: print(f"  distillation: {msg}", file=sys.stderr)  # noqa: E731

    seed_everything(args.seed)
    teacher = mlp_teacher()
    teacher_x, teacher_y = jittered(train_x, train_y, copies=args.teacher_jitter, seed=args.seed)
    log(f"teacher on {len(teacher_y)} samples (with jitter)")
    train_baseline(teacher, teacher_x, teacher_y, args.teacher_epochs * scale, args.seed)
    teacher = frozen_copy(teacher)

    seed_everything(args.seed + 1)
    initial = mlp_student()
    student = copy.deepcopy(initial)
    log("student on labels only")
    train_students(student, train_x, train_y, args.student_epochs * scale, args.seed, None)
    student_kd = copy.deepcopy(initial)
    log(f"student with KD (T={args.temperature}, alpha={args.alpha})")
    train_students(
        student_kd,
        train_x,
        train_y,
        args.student_epochs * scale,
        args.seed,
        hinton_loss(teacher, args.temperature, args.alpha),
    )

    with tempfile.TemporaryDirectory(prefix="bench-kd-") as tmp:
        errors = {
            name: onnx_errors(model, test_x, test_y, Path(tmp), name)
            for name, model in (("teacher", teacher), ("student", student), ("student_kd", student_kd))
        }
    reduction = 100 * (1 - errors["student_kd"] / errors["student"]) if errors["student"] else 0.0
    doc: dict[str, Any] = {
        "teacher_errors": errors["teacher"],
        "student_errors": errors["student"],
        "student_kd_errors": errors["student_kd"],
        "error_reduction_pct": round(reduction, 1),
        "goal": {"min_reduction_pct": 30.0, "met": reduction >= 30.0},
        "test_samples": len(test_y),
        "temperature": args.temperature,
        "alpha": args.alpha,
        "teacher_epochs": args.teacher_epochs * scale,
        "student_epochs": args.student_epochs * scale,
        "quick": args.quick,
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(doc, indent=2))


def train_students(
    model: nn.Module, x: np.ndarray, y: np.ndarray, epochs: float, seed: int, loss_fn: Any
) -> None:
    """The same step-decayed Adam schedule as the baselines, with or without the Hinton loss."""
    if loss_fn is None:
        train_baseline(model, x, y, epochs, seed)
        return
    for index, (share, lr) in enumerate([(0.6, 1e-3), (0.25, 1e-3 / 3), (0.15, 1e-4)]):
        train(model, x, y, epochs=epochs * share, lr=lr, seed=seed + index, loss_fn=loss_fn)


if __name__ == "__main__":
    main()
