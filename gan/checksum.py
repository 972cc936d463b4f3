"""A checksum of a checkpoint's contents, written into the file with them and checked on every
read (checkpoints/last.pt by gan.run.folder, checkpoints/generator.pt by gan.sample): a file whose
bytes changed after it was written (a bad disk, a copy cut short, flipped bits) can still
unpickle, and only the checksum tells. Files stay plain dicts that
`torch.load(path, weights_only=True)` reads; files written before checksums have none.
"""

from __future__ import annotations

import hashlib
from typing import Any

import torch

CHECKSUM = "sha256"  # the key of the digest in the saved dict


def digest(state: Any) -> str:
    """sha256 of a checkpoint's contents (before torch.save, or as torch.load returns them): dict
    keys sorted, each tensor's dtype, shape and bytes, plain values by repr. A file whose bytes
    changed after it was written still unpickles; only this tells."""
    h = hashlib.sha256()
    _feed(h, state)
    return h.hexdigest()


def _feed(h: Any, value: Any) -> None:
    if isinstance(value, torch.Tensor):
        flat = value.detach().cpu().contiguous().reshape(-1)  # 0-d tensors cannot be viewed
        h.update(f"tensor {flat.dtype} {tuple(value.shape)}|".encode())
        h.update(flat.view(torch.uint8).numpy())
    elif isinstance(value, dict):
        h.update(f"dict {len(value)}|".encode())
        for key in sorted(value, key=repr):
            _feed(h, repr(key))
            _feed(h, value[key])
    elif isinstance(value, list | tuple):
        h.update(f"{type(value).__name__} {len(value)}|".encode())
        for item in value:
            _feed(h, item)
    else:
        text = repr(value)
        h.update(f"{len(text)}:{text}|".encode())


def sealed(state: dict[str, Any]) -> dict[str, Any]:
    """`state` with its digest, to be written with torch.save."""
    return {**state, CHECKSUM: digest(state)}


def unseal(record: dict[str, Any]) -> bool:
    """Take the digest out of a loaded record: False if the rest does not match it. A file
    written before checksums has none and is taken as it is."""
    stored = record.pop(CHECKSUM, None)
    return stored is None or stored == digest(record)
