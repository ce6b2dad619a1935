"""DeepLab-ResNet-101 (output stride 8, frozen batch norm) with the Caffe/slim variable names."""

from .model import DeepLabResNetModel, STAGES, ENDPOINTS, PAPER_BLOCKS  # noqa: F401
