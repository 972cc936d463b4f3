"""Your own images (data=folder) and the tensor-side batch pipeline."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from gan.config import AugmentConfig, DataConfig, UserError
from gan.data import BatchSampler, _random_affine, _warp, augment, load_images

SIZE = 16


def folder_cfg(root: Path, cache: Path, **kw) -> DataConfig:
    return DataConfig(name="folder", root=str(root), cache_dir=str(cache), **kw)


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    """An ImageFolder-style tree with RGB, RGBA, grayscale, palette and non-square images."""
    root = tmp_path / "images"
    (root / "jacks" / "deeper").mkdir(parents=True)
    (root / "other").mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (40, 30, 3), dtype=np.uint8)).save(root / "jacks/a.png")
    Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(root / "jacks/b.JPG")
    rgba = np.zeros((24, 24, 4), dtype=np.uint8)
    rgba[..., 0], rgba[:12, :, 3] = 255, 255  # red on top, fully transparent below
    Image.fromarray(rgba, "RGBA").save(root / "jacks/deeper/c.png")
    Image.fromarray(np.full((18, 18), 200, dtype=np.uint8), "L").save(root / "other/d.bmp")
    Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).convert("P").save(
        root / "other/e.png"
    )
    Image.fromarray(rng.integers(0, 255, (20, 28, 3), dtype=np.uint8)).save(root / "other/f.webp")
    (root / "notes.txt").write_text("not an image")
    return root


def test_folder_loads_every_image_as_rgb(image_folder, tmp_path):
    images = load_images(folder_cfg(image_folder, tmp_path / "cache"), SIZE)
    assert images.shape == (6, 3, SIZE, SIZE)
    assert images.dtype == torch.uint8
    # sorted order: jacks/a, jacks/b, jacks/deeper/c (RGBA), other/d (grey), other/e (palette)
    rgba, grey = images[2], images[3]
    top, bottom = rgba[:, : SIZE // 2 - 1], rgba[:, SIZE // 2 + 1 :]
    assert (top[0] > 250).all() and (top[1:] < 5).all()  # the opaque red half
    assert (bottom < 5).all()  # the transparent half became the black background
    assert (grey[0] == grey[1]).all() and (grey[1] == grey[2]).all()


def test_rgba_background_is_configurable(image_folder, tmp_path):
    cfg = folder_cfg(image_folder, tmp_path / "cache", background=[255, 255, 255])
    rgba = load_images(cfg, SIZE)[2]
    assert (rgba[:, -1, :] == 255).all()


def test_cache_is_reused_and_invalidated(image_folder, tmp_path):
    cache = tmp_path / "cache"
    first = load_images(folder_cfg(image_folder, cache), SIZE)
    files = list(cache.glob("folder-*.npy"))
    assert len(files) == 1
    mtime = files[0].stat().st_mtime_ns
    again = load_images(folder_cfg(image_folder, cache), SIZE)
    assert torch.equal(first, again)
    assert files[0].stat().st_mtime_ns == mtime  # read, not rewritten
    # a new file, or another size, is a new cache entry
    Image.new("RGB", (20, 20), (0, 255, 0)).save(image_folder / "other/g.png")
    assert load_images(folder_cfg(image_folder, cache), SIZE).shape[0] == 7
    load_images(folder_cfg(image_folder, cache), 32)
    assert len(list(cache.glob("folder-*.npy"))) == 3


def test_corrupt_file_names_the_path(image_folder, tmp_path):
    bad = image_folder / "jacks" / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    with pytest.raises(UserError, match=r"Cannot decode image '.*broken\.jpg'.*on_corrupt=skip"):
        load_images(folder_cfg(image_folder, tmp_path / "cache"), SIZE)


def test_corrupt_file_can_be_skipped(image_folder, tmp_path, caplog):
    (image_folder / "jacks" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    images = load_images(folder_cfg(image_folder, tmp_path / "cache", on_corrupt="skip"), SIZE)
    assert images.shape[0] == 6
    assert "Skipped 1 corrupt image(s)" in caplog.text


def test_missing_folder(tmp_path):
    with pytest.raises(UserError, match=r"data.root='.*nowhere' is not a folder"):
        load_images(folder_cfg(tmp_path / "nowhere", tmp_path / "cache"), SIZE)


def test_empty_folder(tmp_path):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "readme.md").write_text("no images here")
    with pytest.raises(UserError, match=r"data.root='.*empty' holds no images"):
        load_images(folder_cfg(tmp_path / "empty", tmp_path / "cache"), SIZE)


def test_pumpkins_are_cached_once(tmp_path):
    cfg = DataConfig(num_images=8, cache_dir=str(tmp_path))
    first = load_images(cfg, 32)
    assert first.shape == (8, 3, 32, 32)
    assert len(list(tmp_path.glob("pumpkins-*.npy"))) == 1
    assert torch.equal(first, load_images(cfg, 32))


def test_sampler_covers_an_epoch_and_round_trips():
    sampler = BatchSampler(10, 4, seed=0)
    seen = torch.cat([sampler.next() for _ in range(5)])  # 20 indices = 2 epochs
    assert sorted(seen[:10].tolist()) == list(range(10))
    state = sampler.state_dict()
    expected = [sampler.next() for _ in range(3)]
    other = BatchSampler(10, 4, seed=123)
    other.load_state_dict(state)
    assert all(torch.equal(a, other.next()) for a in expected)


def test_augment_none_is_identity():
    x = torch.rand(4, 3, 16, 16) * 2 - 1
    assert torch.equal(augment(x, AugmentConfig()), x)


def test_hflip_always():
    x = torch.rand(4, 3, 16, 16) * 2 - 1
    assert torch.equal(augment(x, AugmentConfig(hflip=1.0)), x.flip(-1))


def test_identity_affine_keeps_the_image():
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    out = augment(x, AugmentConfig(affine_p=1.0))  # zero ranges: the identity transform
    torch.testing.assert_close(out, x, atol=1e-5, rtol=0)


def test_seed_affine_moves_pixels_a_little(seed_augment):
    torch.manual_seed(0)
    x = torch.rand(8, 3, 32, 32) * 2 - 1
    cfg = replace(seed_augment, hflip=0.0)
    out = augment(x, cfg)
    assert out.shape == x.shape
    assert out.min() >= -1 - 1e-6 and out.max() <= 1 + 1e-6
    assert not torch.allclose(out, x)


def test_warp_is_grid_sample_at_the_affine_grid():
    """_warp builds the sampling grid by broadcasting: the same points as F.affine_grid."""
    torch.manual_seed(0)
    x = torch.rand(5, 3, 12, 20) * 2 - 1
    theta = _random_affine(5, AugmentConfig(degrees=30, translate_x=0.2, shear=10), x.device)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    want = F.grid_sample(x + 1, grid, padding_mode="zeros", align_corners=False) - 1
    torch.testing.assert_close(_warp(x, theta), want, atol=1e-5, rtol=0)


def test_flip_folded_into_the_warp_is_flip_then_warp(seed_augment):
    """A flipped and warped image is warped once, at mirrored coordinates: the same image as
    flipping it first (same random draws), to float rounding."""
    x = torch.rand(16, 3, 16, 16) * 2 - 1
    torch.manual_seed(3)
    flip = torch.rand(16) < seed_augment.hflip
    assert 0 < flip.sum() < 16
    torch.manual_seed(3)
    got = augment(x, seed_augment)
    torch.manual_seed(3)
    torch.rand(16)  # the flip draw
    flipped = torch.where(flip[:, None, None, None], x.flip(-1), x)
    want = augment(flipped, replace(seed_augment, hflip=0.0))
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


def test_images_not_drawn_for_a_warp_are_only_flipped(seed_augment):
    torch.manual_seed(4)
    x = torch.rand(32, 3, 16, 16) * 2 - 1
    cfg = replace(seed_augment, hflip=1.0, affine_p=0.5)
    out = augment(x, cfg)
    same = [torch.equal(o, i.flip(-1)) for o, i in zip(out, x, strict=True)]
    assert 5 < sum(same) < 27  # about half are not warped, and those exactly mirrored


def test_translation_moves_content_sideways_only():
    """translate_x=0.1 shifts by up to 10% of the side (3.2 px at 32 px), never vertically."""
    img = torch.full((64, 3, 32, 32), -1.0)
    img[..., 10:20, 10:20] = 1
    torch.manual_seed(1)
    moved = augment(img, AugmentConfig(affine_p=1.0, translate_x=0.1))
    for m in moved[:, 0]:
        cols = (m > 0).any(0).nonzero().flatten()
        rows = (m > 0).any(1).nonzero().flatten()
        assert 10 - 4 <= cols.min().item() <= 10 + 4
        assert rows.min().item() == 10 and rows.max().item() == 19
    lefts = {(m > 0).any(0).nonzero().min().item() for m in moved[:, 0]}
    assert len(lefts) > 3  # the shifts vary
