"""Model compression: one module per technique behind the small `Stage` interface of `stage.py`.

`pipeline.compress_model` chains stages from a recipe (YAML or a list of dicts); the default recipe is
the "ultimate pipeline" of seed 001: prune -> distill -> cluster -> QAT. Nothing heavy is imported here
so that `edgedeploy --help` stays fast.
"""
