"""Your own images (data=folder) and the tensor-side batch pipeline."""

import os
import struct
import zlib
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

from gan.config import AugmentConfig, DataConfig
from gan.data import MAX_PIXELS, BatchSampler, augment, load_images
from gan.data.augment import _random_affine, _warp
from gan.errors import UserError

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


def test_gan_data_takes_the_flag_its_corrupt_file_error_names(image_folder, tmp_path, capsys):
    """`python -m gan.data` says how to skip a corrupt file in its own terms, and takes them."""
    from gan.data.__main__ import main as preview

    (image_folder / "jacks" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    args = ["--root", str(image_folder), "--cache-dir", str(tmp_path / "cache"), "--size", "16"]
    with pytest.raises(SystemExit, match="--on-corrupt skip"):
        preview([*args, "--out", str(tmp_path / "a.png")])
    preview([*args, "--on-corrupt", "skip", "--out", str(tmp_path / "b.png")])
    assert "6 of folder images" in capsys.readouterr().out


# Image modes: each file is written at S x S, so that the resize is the identity (checked by
# test_fit_of_a_same_size_image_is_exact) and the cache must hold the file's own pixels. The
# background is not black, so that compositing shows; alpha is 0 or full, so that it is exact.
S = 32
BG = (10, 200, 30)


def png_bytes(rows: np.ndarray, width: int, bit_depth: int, color_type: int) -> bytes:
    """A PNG written byte by byte, for what PIL cannot write (16-bit colour, huge): rows (H, ...)
    each holding one row's packed samples (big-endian where 16-bit)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, len(rows), bit_depth, color_type, 0, 0, 0)
    raw = b"".join(b"\x00" + row.tobytes() for row in rows)  # filter type 0 on each row
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def mode_of(path: Path) -> str:
    with Image.open(path) as img:
        return img.mode


def rgb(grey: np.ndarray) -> np.ndarray:
    return np.repeat(grey[..., None], 3, axis=2)


def composite(rgb8: np.ndarray, opaque: np.ndarray) -> np.ndarray:
    return np.where(opaque[..., None], rgb8, np.array(BG, dtype=np.uint8))


def case_grey16(path: Path, rng: np.random.Generator) -> np.ndarray:
    """16-bit grey PNG: PIL opens it as mode I;16, and its convert("RGB") clips at 255."""
    v = rng.integers(0, 65536, (S, S), dtype=np.uint16)
    v[0, :4] = [0, 32896, 65535, 0x7FFF]  # -> 0, 128, 255, 127: v >> 8, not round(v / 257)
    img = Image.fromarray(v)
    assert img.mode == "I;16"
    img.save(path)
    return rgb((v >> 8).astype(np.uint8))


def case_grey16_trns(path: Path, rng: np.random.Generator) -> np.ndarray:
    """16-bit grey PNG with a tRNS value: that exact 16-bit value is transparent."""
    v = rng.integers(0, 65536, (S, S), dtype=np.uint16)
    v[:8, :8] = 40000
    v[8:, 8:][v[8:, 8:] == 40000] = 40001
    v[0, 8] = 40010  # the same high byte as the key, but opaque
    Image.fromarray(v).save(path, transparency=40000)
    return composite(rgb((v >> 8).astype(np.uint8)), v != 40000)


def case_grey16_tiff(path: Path, rng: np.random.Generator) -> np.ndarray:
    """16-bit big-endian grey TIFF saved under a .png name: PIL opens it (mode I;16B)."""
    v = rng.integers(0, 65536, (S, S), dtype=np.uint16)
    img = Image.frombytes("I;16B", (S, S), v.astype(">u2").tobytes())
    img.save(path, format="TIFF")
    assert mode_of(path) == "I;16B"
    return rgb((v >> 8).astype(np.uint8))


def case_grey16_pgm(path: Path, rng: np.random.Generator) -> np.ndarray:
    """16-bit PGM under a .png name, written as raw bytes: PIL opens it as mode I."""
    v = rng.integers(0, 65536, (S, S), dtype=np.uint16)
    path.write_bytes(f"P5 {S} {S} 65535\n".encode() + v.astype(">u2").tobytes())
    assert mode_of(path) == "I"
    return rgb((v >> 8).astype(np.uint8))


def case_rgb48(path: Path, rng: np.random.Generator) -> np.ndarray:
    """16-bit RGB PNG (PIL cannot write one): PIL opens it as RGB, keeping the high bytes."""
    v = rng.integers(0, 65536, (S, S, 3), dtype=np.uint16)
    path.write_bytes(png_bytes(v.astype(">u2"), S, 16, 2))
    assert mode_of(path) == "RGB"
    return (v >> 8).astype(np.uint8)


def case_rgba64(path: Path, rng: np.random.Generator) -> np.ndarray:
    v = rng.integers(0, 65536, (S, S, 4), dtype=np.uint16)
    v[..., 3] = np.where(rng.random((S, S)) < 0.5, 0, 65535)
    path.write_bytes(png_bytes(v.astype(">u2"), S, 16, 6))
    return composite((v[..., :3] >> 8).astype(np.uint8), v[..., 3] > 0)


def case_la32(path: Path, rng: np.random.Generator) -> np.ndarray:
    """16-bit grey and alpha PNG (PIL cannot write one): PIL opens it as RGBA."""
    v = rng.integers(0, 65536, (S, S, 2), dtype=np.uint16)
    v[..., 1] = np.where(rng.random((S, S)) < 0.5, 0, 65535)
    path.write_bytes(png_bytes(v.astype(">u2"), S, 16, 4))
    assert mode_of(path) == "RGBA"
    return composite(rgb((v[..., 0] >> 8).astype(np.uint8)), v[..., 1] > 0)


def case_grey8(path: Path, rng: np.random.Generator) -> np.ndarray:
    v = rng.integers(0, 256, (S, S), dtype=np.uint8)
    Image.fromarray(v).save(path)
    return rgb(v)


def case_grey8_trns(path: Path, rng: np.random.Generator) -> np.ndarray:
    """8-bit grey PNG with a tRNS value (PIL's convert("RGB") ignores it)."""
    v = rng.integers(0, 255, (S, S), dtype=np.uint8)
    v[4:12, 4:12] = 255
    Image.fromarray(v).save(path, transparency=255)
    return composite(rgb(v), v != 255)


def case_la(path: Path, rng: np.random.Generator) -> np.ndarray:
    v = rng.integers(0, 256, (S, S), dtype=np.uint8)
    opaque = rng.random((S, S)) < 0.5
    Image.fromarray(np.stack([v, opaque * np.uint8(255)], -1), "LA").save(path)
    return composite(rgb(v), opaque)


def case_bilevel(path: Path, rng: np.random.Generator) -> np.ndarray:
    on = rng.random((S, S)) < 0.5
    img = Image.fromarray(on)
    assert img.mode == "1"
    img.save(path)
    return rgb(on * np.uint8(255))


def palette_image(rng: np.random.Generator) -> tuple[Image.Image, np.ndarray, np.ndarray]:
    palette = rng.integers(0, 256, (256, 3), dtype=np.uint8)
    index = rng.integers(0, 256, (S, S), dtype=np.uint8)
    img = Image.frombytes("P", (S, S), index.tobytes())
    img.putpalette(palette.tobytes())
    return img, palette, index


def case_palette(path: Path, rng: np.random.Generator) -> np.ndarray:
    img, palette, index = palette_image(rng)
    img.save(path)
    return palette[index]


def case_palette_trns(path: Path, rng: np.random.Generator) -> np.ndarray:
    """Palette PNG whose tRNS makes some entries transparent (alpha 0 or 255 per entry)."""
    img, palette, index = palette_image(rng)
    alpha = np.where(rng.random(256) < 0.3, 0, 255).astype(np.uint8)
    img.save(path, transparency=alpha.tobytes())
    return composite(palette[index], alpha[index] > 0)


def case_rgba(path: Path, rng: np.random.Generator) -> np.ndarray:
    v = rng.integers(0, 256, (S, S, 4), dtype=np.uint8)
    v[..., 3] = np.where(rng.random((S, S)) < 0.5, 0, 255)
    Image.fromarray(v, "RGBA").save(path)
    return composite(v[..., :3], v[..., 3] > 0)


def case_rgb_trns(path: Path, rng: np.random.Generator) -> np.ndarray:
    """RGB PNG with a tRNS colour (PIL's convert("RGB") ignores it)."""
    v = rng.integers(0, 255, (S, S, 3), dtype=np.uint8)
    v[20:, 20:] = (255, 255, 255)
    Image.fromarray(v).save(path, transparency=(255, 255, 255))
    return composite(v, (v != 255).any(-1))


def case_rgba_webp(path: Path, rng: np.random.Generator) -> np.ndarray:
    v = rng.integers(0, 256, (S, S, 4), dtype=np.uint8)
    v[..., 3] = np.where(rng.random((S, S)) < 0.5, 0, 255)
    Image.fromarray(v, "RGBA").save(path, lossless=True, exact=True)
    return composite(v[..., :3], v[..., 3] > 0)


def case_palette_bmp(path: Path, rng: np.random.Generator) -> np.ndarray:
    img, palette, index = palette_image(rng)
    img.save(path)
    return palette[index]


def case_cmyk_jpeg(path: Path, rng: np.random.Generator) -> np.ndarray:
    """CMYK JPEG: the same pixels as PIL's own decoding to RGB."""
    Image.fromarray(rng.integers(0, 256, (S, S, 4), dtype=np.uint8), "CMYK").save(path)
    with Image.open(path) as img:
        assert img.mode == "CMYK"
        return np.asarray(img.convert("RGB"))


def case_grey_jpeg(path: Path, rng: np.random.Generator) -> np.ndarray:
    Image.fromarray(rng.integers(0, 256, (S, S), dtype=np.uint8)).save(path)
    with Image.open(path) as img:
        assert img.mode == "L"
        return np.asarray(img.convert("RGB"))


MODE_CASES: dict[str, tuple[str, Callable[[Path, np.random.Generator], np.ndarray]]] = {
    "grey16": ("png", case_grey16),
    "grey16-trns": ("png", case_grey16_trns),
    "grey16-tiff-as-png": ("png", case_grey16_tiff),
    "grey16-pgm-as-png": ("png", case_grey16_pgm),
    "rgb48": ("png", case_rgb48),
    "rgba64": ("png", case_rgba64),
    "la32": ("png", case_la32),
    "grey8": ("png", case_grey8),
    "grey8-trns": ("png", case_grey8_trns),
    "la": ("png", case_la),
    "bilevel": ("png", case_bilevel),
    "palette": ("png", case_palette),
    "palette-trns": ("png", case_palette_trns),
    "rgba": ("png", case_rgba),
    "rgb-trns": ("png", case_rgb_trns),
    "rgba-webp": ("webp", case_rgba_webp),
    "palette-bmp": ("bmp", case_palette_bmp),
    "cmyk-jpeg": ("jpg", case_cmyk_jpeg),
    "grey-jpeg": ("jpeg", case_grey_jpeg),
}


@pytest.mark.parametrize("case", MODE_CASES)
def test_every_mode_is_cached_as_its_own_8bit_rgb(case, tmp_path):
    ext, write = MODE_CASES[case]
    root = tmp_path / "images"
    root.mkdir()
    want = write(root / f"image.{ext}", np.random.default_rng(len(case)))
    cfg = folder_cfg(root, tmp_path / "cache", background=list(BG))
    got = load_images(cfg, S)[0].permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(got, want)


def test_fit_of_a_same_size_image_is_exact():
    """What the mode tests rely on: the resize of an S x S image to S x S changes nothing."""
    v = np.random.default_rng(0).integers(0, 256, (S, S, 3), dtype=np.uint8)
    fitted = ImageOps.fit(Image.fromarray(v), (S, S), Image.Resampling.LANCZOS)
    np.testing.assert_array_equal(np.asarray(fitted), v)


def write_float_tiff(path: Path) -> None:
    Image.fromarray(np.linspace(0, 1, S * S, dtype=np.float32).reshape(S, S)).save(
        path, format="TIFF"
    )


def write_lab_tiff(path: Path) -> None:
    Image.new("LAB", (S, S), (50, 128, 128)).save(path, format="TIFF")


def write_int32_tiff(path: Path) -> None:
    Image.fromarray(np.full((S, S), 70000, dtype=np.int32)).save(path, format="TIFF")


@pytest.mark.parametrize(
    ("write", "reason"),
    [
        (write_float_tiff, "pixel mode F"),
        (write_lab_tiff, "pixel mode LAB"),
        (write_int32_tiff, "pixel mode I with values 70000 to 70000, outside 16 bits"),
    ],
)
def test_mode_without_8bit_meaning_is_refused_by_name(write, reason, tmp_path):
    """Floats, CIELab, 32-bit integers (TIFFs under a .png name): PIL's convert("RGB") clips
    or mangles them, so they are refused, naming the file, the mode and the way out."""
    root = tmp_path / "images"
    root.mkdir()
    write(root / "odd.png")
    with pytest.raises(UserError) as err:
        load_images(folder_cfg(root, tmp_path / "cache"), S)
    msg = str(err.value)
    assert f"{root / 'odd.png'}" in msg and reason in msg and "on_corrupt=skip" in msg
    assert "\n" not in msg


def write_huge_png(path: Path, side: int = 13000) -> None:
    """A one-colour 1-bit PNG of side x side: 20 kB on disk, 169 M pixels once decoded."""
    path.write_bytes(png_bytes(np.zeros((side, (side + 7) // 8), np.uint8), side, 1, 0))


def test_huge_image_is_refused_from_its_header(image_folder, tmp_path):
    """No 2.6 GB decode, no DecompressionBombWarning (an error under pytest): the header's
    size is checked against MAX_PIXELS, and the file is named with its size and the limit."""
    write_huge_png(image_folder / "huge.png")
    with pytest.raises(
        UserError,
        match=rf"Cannot decode image '.*huge\.png' \(13000x13000 = 169,000,000 pixels, above "
        rf"the limit of {MAX_PIXELS:,}.*on_corrupt=skip",
    ):
        load_images(folder_cfg(image_folder, tmp_path / "cache"), SIZE)


def test_huge_image_can_be_skipped(image_folder, tmp_path, caplog):
    write_huge_png(image_folder / "huge.png")
    images = load_images(folder_cfg(image_folder, tmp_path / "cache", on_corrupt="skip"), SIZE)
    assert images.shape[0] == 6
    assert "Skipped 1 corrupt image(s)" in caplog.text
    assert "huge.png (13000x13000 = 169,000,000 pixels, above the limit" in caplog.text


def test_jpeg_above_the_limit_is_decoded_at_a_smaller_scale(tmp_path):
    """A 42-megapixel JPEG is not refused: libjpeg decodes it at 1/8 scale, under the limit."""
    root = tmp_path / "images"
    root.mkdir()
    Image.new("RGB", (7000, 6000), (90, 160, 220)).save(root / "big.jpg")
    assert MAX_PIXELS < 7000 * 6000
    images = load_images(folder_cfg(root, tmp_path / "cache"), S)
    assert images.shape == (1, 3, S, S)
    assert (images[0].flatten(1).float().mean(1) - torch.tensor([90, 160, 220])).abs().max() < 2


def test_broken_symlink_is_refused_by_name(image_folder, tmp_path):
    link = image_folder / "jacks" / "gone.png"
    os.symlink(tmp_path / "nowhere.png", link)
    with pytest.raises(
        UserError, match=rf"Cannot decode image '{link}' \(a broken symlink, to '.*nowhere\.png'"
    ):
        load_images(folder_cfg(image_folder, tmp_path / "cache"), SIZE)


def test_broken_symlink_is_skipped_and_counted(image_folder, tmp_path, caplog):
    link = image_folder / "other" / "gone.png"
    os.symlink(tmp_path / "nowhere.png", link)
    images = load_images(folder_cfg(image_folder, tmp_path / "cache", on_corrupt="skip"), SIZE)
    assert images.shape[0] == 6
    assert f"Skipped 1 corrupt image(s) under {image_folder}" in caplog.text
    assert f"{link} (a broken symlink" in caplog.text
    # mending the link is a new cache entry, with the image in it
    Image.new("RGB", (20, 20), (0, 255, 0)).save(tmp_path / "nowhere.png")
    assert load_images(folder_cfg(image_folder, tmp_path / "cache"), SIZE).shape[0] == 7


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
