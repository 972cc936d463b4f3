"""A trained G for programs without pumpgan (`python -m gan.sample RUN --export FILE`):

- `g.onnx`: the whole G as an ONNX graph (opset 18), input `z` (B, dim_z, 1, 1) float32 for any
  batch of two or more, output `image` (B, 3, S, S) in [-1, 1]; runs in onnxruntime from Python,
  C++, C#, Java or JavaScript.
- `g.safetensors` + `g.json`: the weights (safetensors, readable by any framework) and what they
  are: the model config, the layers in order with their weight names and shapes' meaning, the
  step, whether they are the EMA's and, for a best.pt, its SWD.

G normalises each BatchNorm by the statistics of the batch it makes, as in training (and as the
PyTorch DCGAN example samples), so the ONNX graph computes batch statistics too: make images in
batches of more than a few, and expect an image to depend a little on its batch-mates.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gan.files import atomic_write

FORMATS = (".onnx", ".safetensors")  # the --export suffixes
OPSET = 18


def batch_statistics(gen: nn.Module) -> nn.Module:
    """A copy of `gen` whose BatchNorm layers always normalise by the batch's own statistics
    and keep no running ones: the training-mode output, without the state a training-mode
    forward changes (which an exported graph cannot hold)."""
    copied = copy.deepcopy(gen).cpu().float()
    for module in copied.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.track_running_stats = False
            module.running_mean = module.running_var = module.num_batches_tracked = None
    return copied.eval()


def export_onnx(gen: nn.Module, dim_z: int, path: Path) -> None:
    """G as one ONNX file (weights inside), its batch size free (at least 2)."""
    model = batch_statistics(gen)
    z = torch.randn(4, dim_z, 1, 1)
    batch = torch.export.Dim("batch", min=2)

    def write(tmp: Path) -> None:
        torch.onnx.export(
            model,
            (z,),
            str(tmp),
            input_names=["z"],
            output_names=["image"],
            dynamic_shapes={"z": {0: batch}},
            opset_version=OPSET,
            external_data=False,
            dynamo=True,
            verbose=False,
        )

    atomic_write(path, write)


def export_safetensors(gen: nn.Module, about: dict[str, Any], path: Path) -> Path:
    """G's weights as `path` (.safetensors, `about` in its metadata too) and a JSON file beside
    it that says how to run them; returns the JSON file's path."""
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().float().contiguous() for k, v in gen.state_dict().items()}
    state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    spec = {**about, "layers": layers(gen), "batchnorm": "batch statistics of each batch made"}
    info = path.with_suffix(".json")
    atomic_write(path, lambda tmp: save_file(state, str(tmp), {"pumpgan": json.dumps(spec)}))
    atomic_write(info, lambda tmp: tmp.write_text(json.dumps(spec, indent=2) + "\n"))
    return info


def layers(gen: nn.Module) -> list[dict[str, Any]]:
    """G's layers in the order they run, each with its weight names in the safetensors file."""
    out: list[dict[str, Any]] = []
    for name, module in gen.named_modules():
        if isinstance(module, nn.ConvTranspose2d):
            out.append(
                {
                    "op": "conv_transpose2d",
                    "weight": f"{name}.weight",  # (in, out, kh, kw)
                    "bias": f"{name}.bias" if module.bias is not None else None,
                    "stride": module.stride[0],
                    "padding": module.padding[0],
                }
            )
        elif isinstance(module, nn.modules.batchnorm._BatchNorm):
            # y = (x - mean_b) / sqrt(var_b + eps) * weight + bias, mean_b and var_b (biased)
            # over the batch and both spatial axes, per channel
            out.append(
                {"op": "batch_norm", "weight": f"{name}.weight", "bias": f"{name}.bias"}
                | {"eps": module.eps}
            )
        elif isinstance(module, nn.ReLU | nn.Tanh):
            out.append({"op": type(module).__name__.lower()})
    return out
