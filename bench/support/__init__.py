"""Code the benchmarks share (not benchmarks themselves):

- training.py: MNIST / Fashion-MNIST arrays, the Fashion-MNIST CNNs' factory arguments, baseline
  training, and the jittered training set (made with edgedeploy.data.augment.shift_images)
- photos.py: real offline photos (calibration and evaluation sets, disjoint) and synthetic smooth images
- tfmot.py: TF-MOT's prune -> cluster -> PCQAT pipeline for bench/deep_compression.py ([tf] extra)
"""
