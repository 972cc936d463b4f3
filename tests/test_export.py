"""`gan.sample RUN --export`: G as ONNX and as safetensors + JSON, each making the images the
PyTorch G makes from the same noise, run without pumpgan's code (onnxruntime; plain torch
functions following the JSON's layer list)."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from gan.config import ModelConfig
from gan.nets.generator_file import load_generator
from gan.nets.models import Generator
from gan.sample import main as sample
from gan.sample import save_generator


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run folder with a 32 px generator.pt whose BatchNorm weights and running statistics
    are not their initial values (so that using the wrong ones shows)."""
    torch.manual_seed(0)
    cfg = ModelConfig(gen_features=4, disc_features=4, dim_z=8)
    gen = Generator(cfg)
    with torch.no_grad():
        for module in gen.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
        gen.train()(torch.randn(32, 8, 1, 1) * 3)  # running statistics unlike any batch's
    path = tmp_path_factory.mktemp("export") / "run" / "checkpoints" / "generator.pt"
    path.parent.mkdir(parents=True)
    save_generator(path, dataclasses.asdict(cfg), gen, step=7, ema=False)
    return path.parents[1]


def noise(n: int) -> torch.Tensor:
    return torch.randn(n, 8, 1, 1, generator=torch.Generator().manual_seed(n))


def pytorch_images(run: Path, z: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return load_generator(run / "checkpoints" / "generator.pt")(z).numpy()


@pytest.fixture(scope="module")
def onnx_file(run: Path) -> Path:
    out = run / "g.onnx"
    assert sample([str(run), "--export", str(out)]) == 0
    return out


@pytest.mark.parametrize("n", [16, 3])
def test_the_onnx_g_makes_the_pytorch_g_images(run: Path, onnx_file: Path, n: int) -> None:
    session = onnxruntime.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    z = noise(n)
    (images,) = session.run(["image"], {"z": z.numpy()})
    assert images.shape == (n, 3, 32, 32)
    np.testing.assert_allclose(images, pytorch_images(run, z), atol=2e-5)


def test_safetensors_and_its_json_are_enough_to_run_g(run: Path, tmp_path: Path) -> None:
    out = tmp_path / "g.safetensors"
    assert sample([str(run), "--export", str(out)]) == 0
    spec = json.loads(out.with_suffix(".json").read_text())
    assert spec["model"]["dim_z"] == 8 and spec["step"] == 7 and spec["ema"] is False
    weights = load_file(str(out))
    x = noise(16)
    for layer in spec["layers"]:  # torch functions only: what any framework has
        if layer["op"] == "conv_transpose2d":
            x = F.conv_transpose2d(
                x, weights[layer["weight"]], stride=layer["stride"], padding=layer["padding"]
            )
        elif layer["op"] == "batch_norm":
            w, b = weights[layer["weight"]], weights[layer["bias"]]
            x = F.batch_norm(x, None, None, w, b, training=True, eps=layer["eps"])
        else:
            x = {"relu": torch.relu, "tanh": torch.tanh}[layer["op"]](x)
    np.testing.assert_allclose(x.numpy(), pytorch_images(run, noise(16)), atol=1e-5)


def test_an_unknown_export_suffix_is_refused(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert sample([str(run), "--export", str(tmp_path / "g.pt")]) == 2
    err = capsys.readouterr().err
    assert "g.pt" in err and ".onnx" in err and err.count("\n") == 1
    assert not list(tmp_path.iterdir())
