"""oscgan: a headless, real-time StyleGAN render engine for live visuals."""

__version__ = "0.1.0"
