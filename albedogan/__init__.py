"""albedogan: realistic generative 3D face models (AlbedoGAN) in PyTorch Lightning + Hydra.

Importing the package has no side effects; subpackages are imported on demand.
"""

__version__ = "0.1.0"
