"""G and D: moved to gan/nets/models.py; `from gan.models import Generator` keeps working."""

from gan.nets.models import Discriminator, Generator, init_weights, num_params

__all__ = ["Discriminator", "Generator", "init_weights", "num_params"]
