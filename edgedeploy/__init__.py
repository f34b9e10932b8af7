"""edgedeploy: compress, convert, push and profile neural networks on edge devices.

Importing the package must stay cheap (no torch/TF/ORT here): the CLI's --help has to be instant.
"""

__version__ = "0.1.0"
