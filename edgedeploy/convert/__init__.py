"""Conversion to ONNX and TFLite with verification, op-coverage pre-flight and model inspection.

Nothing heavy is imported here: cli.py imports submodules lazily inside its verbs.
"""
