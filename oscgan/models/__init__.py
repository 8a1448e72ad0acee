"""Networks and loading: our own StyleGAN2/StyleGAN3 generators and safe file readers.

``load_generator(path, which='G_ema', device=None)`` reads NVIDIA network pickles, oscgan
``.safetensors`` files, rosinality checkpoints and ``builtin:NAME`` models; every problem with
a file is a ``ModelLoadError`` naming the file.
"""

from oscgan.models.errors import ModelLoadError
from oscgan.models.loader import load_generator

__all__ = ["ModelLoadError", "load_generator"]
