"""ddim: train denoising diffusion implicit models on real images and generate new ones."""

__version__ = "0.2.0"
