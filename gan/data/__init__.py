"""The training images: the built-in pumpkins (pumpkins) or a folder of images decoded once into
a uint8 cache (images), and what happens to a batch on the device: the sampler, scaling to
[-1, 1] and augmentation (augment). `python -m gan.data` previews a data set."""

from gan.data.augment import BatchSampler, augment, real_batch
from gan.data.images import (
    IMAGE_EXTENSIONS,
    MAX_PIXELS,
    decode_image,
    list_image_files,
    load_images,
)

__all__ = [
    "IMAGE_EXTENSIONS",
    "MAX_PIXELS",
    "BatchSampler",
    "augment",
    "decode_image",
    "list_image_files",
    "load_images",
    "real_batch",
]
