"""Procedural carved jack-o'-lanterns: the built-in training set.

Each image is a night-time "jacks" photo: a ribbed orange pumpkin (varied shape, hue, size and
position) lit by a side key light (per-rib shading, groove shadows, a waxy specular highlight, a
darker underside), a green-brown stem, and a carved face (eyes, nose, jagged or toothy mouth)
whose cut-outs glow yellow-orange from a candle inside: a hot core seen through the hole, the
lit wall of the cut around it, and bloom spilling onto the skin and the dark, vignetted
background. Sometimes a table top or a second, smaller pumpkin is in view.

Shapes are analytic or drawn with Pillow at 2-4x and box-filtered down, so edges are
anti-aliased; everything else is vectorised numpy at the output size.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

Array = np.ndarray
Points = list[tuple[float, float]]


def _rgb(r: float, g: float, b: float) -> Array:
    """A colour shaped (3, 1, 1) to broadcast over channels-first images."""
    return np.array([r, g, b], np.float32).reshape(3, 1, 1)


def _blur(a: Array, radius: float) -> Array:
    """Gaussian blur of a [0, 1] float map (via an 8-bit Pillow image; precise enough for glow)."""
    im = Image.fromarray(np.clip(a * 255.0 + 0.5, 0, 255).astype(np.uint8))
    return np.asarray(im.filter(ImageFilter.GaussianBlur(radius)), np.float32) / 255.0


def _mask(
    polys: list[Array],
    shape: tuple[int, int],
    ss: int,
    origin: tuple[int, int] = (0, 0),
    holes: list[Array] | None = None,
    line: float = 0.0,
) -> Array:
    """Coverage in [0, 1] of filled `polys` minus `holes` ((n, 2) pixel coords) over a window of
    `shape` whose top-left pixel is `origin`, drawn at `ss`x and box-filtered down. With
    `line` > 0 the polys are open strokes `line` pixels wide instead."""
    h, w = shape
    im = Image.new("L", (w * ss, h * ss), 0)
    draw = ImageDraw.Draw(im)
    for fill, group in ((255, polys), (0, holes or [])):
        for poly in group:
            xy = ((poly - origin) * ss).ravel().tolist()
            if line > 0:
                draw.line(xy, fill=fill, width=max(round(line * ss), 1), joint="curve")
            else:
                draw.polygon(xy, fill=fill)
    return np.asarray(im.resize((w, h), Image.Resampling.BOX), np.float32) / 255.0


def _window(poly: Array, size: int, margin: float) -> tuple[int, int, int, int] | None:
    """Pixel bounding box (x0, y0, x1, y1) of `poly` plus `margin`, clipped; None if off-image."""
    (x0, y0), (x1, y1) = poly.min(0) - margin, poly.max(0) + margin
    x0, y0 = max(int(x0), 0), max(int(y0), 0)
    x1, y1 = min(int(x1) + 1, size), min(int(y1) + 1, size)
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


def _background(rng: np.random.Generator, yy: Array, xx: Array, size: int) -> Array:
    """Dark backdrop: a random dark tint, a vertical gradient and a vignette."""
    tints = [
        (0.02, 0.02, 0.025),
        (0.03, 0.04, 0.10),
        (0.07, 0.03, 0.09),
        (0.08, 0.05, 0.03),
        (0.03, 0.05, 0.04),
        (0.05, 0.04, 0.05),
    ]
    top = _rgb(*tints[rng.integers(len(tints))]) * rng.uniform(0.5, 1.6)
    bottom = _rgb(*tints[rng.integers(len(tints))]) * rng.uniform(0.4, 1.3)
    t = yy / size
    bg = top * (1 - t) + bottom * t
    r2 = (xx / size - rng.uniform(0.3, 0.7)) ** 2 + (yy / size - rng.uniform(0.3, 0.7)) ** 2
    bg *= 1.0 - rng.uniform(0.3, 0.9) * np.clip(r2 * 2.0, 0, 1)
    if rng.random() < 0.2:  # a few out-of-focus warm lights (bokeh)
        for _ in range(rng.integers(2, 6)):
            bx, by, br = rng.uniform(0, size), rng.uniform(0, size * 0.6), rng.uniform(0.03, 0.08)
            d2 = ((xx - bx) ** 2 + (yy - by) ** 2) / (br * size) ** 2
            bg += np.exp(-d2 * d2) * _rgb(0.25, 0.15, 0.05) * rng.random()
    return bg


def _ground(
    rng: np.random.Generator,
    img: Array,
    yy: Array,
    xx: Array,
    cx: float,
    cy: float,
    rx: float,
    ry: float,
) -> None:
    """A table top / ground plane whose edge lies behind the pumpkin, with a contact shadow."""
    size = img.shape[1]
    horizon = cy + ry * rng.uniform(-0.1, 0.6)
    col = _rgb(0.16, 0.10, 0.06) * rng.uniform(0.4, 1.2)
    below = np.clip((yy - horizon) / 1.2 + 0.5, 0, 1)  # 1 px soft edge
    depth = np.clip((yy - horizon) / max(size - horizon, 1.0), 0, 1)
    img[:] = img * (1 - below) + below * col * (0.5 + 0.7 * depth)
    shadow = np.exp(-(((xx - cx) / (rx * 1.2)) ** 2) - ((yy - cy - ry * 0.95) / (ry * 0.15)) ** 2)
    img *= 1 - 0.7 * shadow * below
    # A warm pool of candle light thrown forward onto the surface.
    pool = np.exp(-(((xx - cx) / (rx * 1.4)) ** 2) - ((yy - cy - ry * 1.15) / (ry * 0.3)) ** 2)
    img += _rgb(0.5, 0.25, 0.05) * (pool * below * rng.uniform(0.1, 0.5))


def _ribs(lon: Array, n: float, phase: float) -> tuple[Array, Array]:
    """(position 0..1 across the rib a longitude falls in, rib index); 0 and 1 are grooves."""
    r = lon * (n / np.pi) + phase
    idx = np.floor(r)
    return r - idx, idx.astype(np.int32)


def _body(rng: np.random.Generator, img: Array, yy: Array, xx: Array, p: dict) -> Array:
    """Composite the ribbed, lit pumpkin body onto `img`; return its coverage."""
    cx, cy, rx, ry = p["cx"], p["cy"], p["rx"], p["ry"]
    n, phase = p["ribs"], p["phase"]
    u, v = (xx - cx) / rx, (yy - cy) / ry
    rho = np.sqrt(u * u + v * v) + 1e-6
    ca, sa = u / rho, v / rho
    # Silhouette radius: rib scallops at top and bottom, plus a dimple where the stem sits.
    f_edge = _ribs(np.arcsin(np.clip(ca, -1, 1)), n, phase)[0]
    groove = (1 - np.sin(np.pi * f_edge)) ** 3
    edge = 1 - p["scallop"] * np.abs(sa) ** 1.5 * groove
    edge -= p["dimple"] * np.exp(-((ca / 0.25) ** 2)) * (sa < 0)
    grad = np.sqrt((ca / rx) ** 2 + (sa / ry) ** 2)  # |d rho / d pixel|, for analytic AA
    cover = np.clip(0.5 - (rho - edge) / grad, 0, 1)

    # Sphere normals, bent per rib so each rib is a bulge with a shadowed groove.
    uu, vv = u / edge, v / edge
    nz = np.sqrt(np.clip(1 - uu * uu - vv * vv, 0, 1))
    lat = np.arcsin(np.clip(vv, -1, 1))
    lon = np.arctan2(uu, nz)
    f, rib = _ribs(lon, n, phase)
    fg = np.minimum(f, 1 - f)  # distance to the nearest groove
    # Tilt normals across each rib; fade the tilt out at the crease so it doesn't alias.
    lon_b = lon + p["bulge"] * (2 * f - 1) * (1 - np.exp(-((fg / 0.05) ** 2)))
    rib_tint = rng.uniform(0.85, 1.1, 16).astype(np.float32)[rib + 6]  # |rib| <= 5
    cl = np.cos(lat)
    nx, ny, nzb = cl * np.sin(lon_b), np.sin(lat), cl * np.cos(lon_b)
    lx, ly, lz = p["light"]
    diffuse = np.clip((nx * lx + ny * ly + nzb * lz + 0.25) / 1.25, 0, 1)
    hx, hy, hz = lx, ly, lz + 1.0
    hn = (hx * hx + hy * hy + hz * hz) ** 0.5
    n_dot_h = np.clip((nx * hx + ny * hy + nzb * hz) / hn, 1e-6, 1)
    spec = np.exp(np.log(n_dot_h) * p["shine"]) * p["spec"]
    # Groove shadow at least ~1 px wide (in rib units) so small renders don't alias into stripes.
    px = n / (np.pi * p["rx"] * np.maximum(nz, 0.3))
    groove_ao = 1 - 0.5 * np.exp(-((fg / np.maximum(0.09, 0.8 * px)) ** 2)) * nz
    # Cheap texture: fine streaks along the ribs and broad blotches.
    k = rng.uniform([20, 35, 2, 2], [30, 50, 5, 5]).tolist()
    ph = rng.uniform(0, 2 * np.pi, 4).tolist()
    streaks = np.sin(lon * k[0] + ph[0]) + 0.6 * np.sin(lon * k[1] + ph[1])
    mottle = np.sin(u * k[2] + ph[2]) * np.sin(v * k[3] + ph[3])
    shade = (p["ambient"] + p["key"] * diffuse) * groove_ao
    shade *= (1 - 0.5 * np.clip(vv, 0, 1) ** 2) * (0.6 + 0.4 * nz**0.5)
    shade *= rib_tint * (1 + 0.05 * streaks + 0.07 * mottle) * p["exposure"]
    # Per-channel gamma: shadows (and dim exposures) go deeper red-brown, not olive or grey.
    log_shade = np.log(np.clip(shade, 1e-4, 1.5))
    skin = p["color"] * np.exp(log_shade * _rgb(1.0, 1.3, 1.8))
    skin += spec * p["exposure"] * _rgb(1.0, 0.9, 0.75)
    img[:] = img * (1 - cover) + skin * cover
    return cover


def _stem(rng: np.random.Generator, img: Array, yy: Array, xx: Array, p: dict, ss: int) -> None:
    """A tapered, slightly curved, ridged green-brown stem rising from the dimple."""
    bx, by = p["stem_x"], p["cy"] - p["ry"] * (0.94 - p["dimple"])
    size = img.shape[1]
    length, w0 = p["ry"] * rng.uniform(0.2, 0.5), p["rx"] * rng.uniform(0.08, 0.14)
    ang, bend = rng.uniform(-0.6, 0.6), rng.uniform(-0.5, 0.5)
    t = np.linspace(0, 1, 8)
    a = ang + bend * t
    cx, cy = bx + length * np.sin(a) * t, by - length * np.cos(a) * t  # curved centre line
    w = w0 * np.where(t < 0.15, 1.4 - 0.9 * t, 1.0 - 0.25 * t)  # flared base, tapering
    dx, dy = w * np.cos(a), w * np.sin(a)
    poly = np.concatenate([np.stack([cx - dx, cy - dy], 1), np.stack([cx + dx, cy + dy], 1)[::-1]])
    if (box := _window(poly, size, 1)) is None:
        return
    x0, y0, x1, y1 = box  # only touch the stem's bounding box
    cover = _mask([poly], (y1 - y0, x1 - x0), ss, (x0, y0))
    # Across-stem coordinate gives a rounded, ridged look; lit on the key-light side.
    across = ((xx[y0:y1, x0:x1] - bx) * np.cos(ang) + (yy[y0:y1, x0:x1] - by) * np.sin(ang)) / w0
    shade = 0.55 + 0.35 * np.clip(across * np.sign(p["light"][0]), -1, 1)
    shade *= 0.85 + 0.15 * np.cos(across * 6.0)
    col = _rgb(rng.uniform(0.25, 0.42), rng.uniform(0.25, 0.35), rng.uniform(0.08, 0.15))
    win = img[:, y0:y1, x0:x1]
    win += (col * (shade * p["exposure"] * 1.3) - win) * cover


def _lid(rng: np.random.Generator, img: Array, body: Array, p: dict, ss: int, glow: bool) -> None:
    """The jagged knife cut around the stem where the lid was taken off (dark, or leaking light)."""
    t = np.linspace(0, np.pi, 17)
    r = 1 + 0.12 * (np.arange(17) % 2) * rng.uniform(0.3, 1.0)  # zig-zag
    lw, lh = p["rx"] * rng.uniform(0.3, 0.45), p["ry"] * rng.uniform(0.1, 0.18)
    top = p["cy"] - p["ry"] * (1 - p["dimple"])
    cut = np.stack([p["stem_x"] + lw * r * np.cos(t), top + lh * (0.6 + r * np.sin(t))], 1)
    if (box := _window(cut, img.shape[1], 2)) is None:
        return
    x0, y0, x1, y1 = box
    m = _mask([cut], (y1 - y0, x1 - x0), ss, (x0, y0), line=max(0.035 * p["rx"], 0.5))
    col = _rgb(1.0, 0.6, 0.15) if glow else _rgb(0.05, 0.02, 0.0)
    win = img[:, y0:y1, x0:x1]
    win += (col - win) * (m * body[y0:y1, x0:x1] * rng.uniform(0.4, 0.8))


def _shape(
    kind: str, x: float, y: float, r: float, rng: np.random.Generator, flip: float = 1.0
) -> Points:
    """One carved feature (eye or nose) in face coordinates, centred on (x, y), radius r."""
    j = rng.uniform(0.85, 1.15, 6) * r
    if kind == "tri":  # apex up; `flip` tilts it so the inner corner sits lower (angry brows)
        tilt = rng.uniform(-0.15, 0.35) * flip
        return [
            (x - j[0], y + 0.6 * j[1] - tilt * r),
            (x + j[2], y + 0.6 * j[1] + tilt * r),
            (x + rng.uniform(-0.2, 0.2) * r, y - j[3]),
        ]
    if kind == "itri":  # apex down
        return [(x - j[0], y - 0.6 * j[1]), (x + j[2], y - 0.6 * j[1]), (x, y + j[3])]
    if kind == "diamond":
        return [(x, y - j[0] * 1.1), (x + j[1] * 0.8, y), (x, y + j[2] * 1.1), (x - j[3] * 0.8, y)]
    t = np.linspace(0, 2 * np.pi, 18, endpoint=False)
    if kind == "circle":
        return list(zip(x + j[0] * np.cos(t), y + j[1] * 0.9 * np.sin(t), strict=True))
    # Crescent: an arch (a happy "^" eye), an outer arc over a narrower, flatter inner arc.
    j *= 1.25
    t = np.linspace(np.pi, 0, 12)
    outer = list(zip(x + j[0] * np.cos(t), y + 0.5 * r - j[1] * np.sin(t), strict=True))
    inner = list(
        zip(
            x + 0.6 * j[0] * np.cos(t[::-1]),
            y + 0.5 * r - 0.25 * j[1] * np.sin(t[::-1]),
            strict=True,
        )
    )
    return outer + inner


def _mouth(
    rng: np.random.Generator, y0: float, w: float, h: float
) -> tuple[list[Points], list[Points]]:
    """A grin in face coordinates: (polygons to cut, teeth to leave standing)."""
    lift, bow = rng.uniform(0.03, 0.2), rng.uniform(-0.04, 0.1)
    s = np.linspace(-w, w, 21)
    k = (s / w) ** 2
    upper = y0 - lift + (lift + bow) * (1 - k)
    lower = upper + h * (1 - k ** rng.uniform(1.5, 4))
    kind = rng.choice(["zigzag", "teeth", "grin", "zigzag"])
    teeth: list[Points] = []
    if kind == "zigzag":  # interleaved teeth from above and below
        n = int(rng.integers(3, 7)) * 2
        s = np.linspace(-w, w, n * 2 + 1)
        k = (s / w) ** 2
        upper = y0 - lift + (lift + bow) * (1 - k)
        lower = upper + h * (1 - k**2.5)
        tooth = 0.6 * h * (1 - k**2)
        upper = upper + tooth * (np.arange(len(s)) % 4 == 1)
        lower = lower - tooth * (np.arange(len(s)) % 4 == 3)
    elif kind == "teeth":  # one to three square teeth hanging down and/or standing up
        for _ in range(rng.integers(1, 4)):
            tx, tw = rng.uniform(-0.5, 0.5) * w, rng.uniform(0.08, 0.14) * w
            i = int(np.argmin(np.abs(s - tx)))
            top, gap = rng.random() < 0.6, lower[i] - upper[i]
            ty0, ty1 = (
                (upper[i] - 0.05, upper[i] + gap * 0.55)
                if top
                else (lower[i] - gap * 0.55, lower[i] + 0.05)
            )
            teeth.append([(tx - tw, ty0), (tx + tw, ty0), (tx + tw, ty1), (tx - tw, ty1)])
    return [list(zip(s, upper, strict=True)) + list(zip(s[::-1], lower[::-1], strict=True))], teeth


def _face(rng: np.random.Generator) -> tuple[list[Points], list[Points]]:
    """Eyes, nose and mouth as (cut polygons, teeth) in face coordinates (units of radius)."""
    eye_kind = rng.choice(["tri"] * 6 + ["circle", "crescent", "diamond", "itri"])
    ey, sep, er = rng.uniform(-0.4, -0.2), rng.uniform(0.28, 0.42), rng.uniform(0.14, 0.24)
    kinds = [eye_kind, eye_kind]
    if rng.random() < 0.1:  # winking / mismatched eyes
        kinds[rng.integers(2)] = rng.choice(["crescent", "circle", "tri"])
    cuts = [
        _shape(kinds[0], -sep, ey, er, rng, flip=-1.0),
        _shape(kinds[1], sep, ey + rng.uniform(-0.03, 0.03), er, rng, flip=1.0),
    ]
    nose = rng.choice(["tri", "tri", "tri", "itri", "diamond", "circle", "none"])
    if nose != "none":
        cuts.append(_shape(nose, 0, rng.uniform(-0.05, 0.08), rng.uniform(0.07, 0.12), rng))
    mouth, teeth = _mouth(
        rng, rng.uniform(0.2, 0.32), rng.uniform(0.4, 0.65), rng.uniform(0.18, 0.34)
    )
    return cuts + mouth, teeth


def _to_pixels(polys: list[Points], p: dict, inset: float = 0.0) -> list[Array]:
    """Wrap face coordinates onto the front of the pumpkin (foreshortened towards the sides);
    `inset` > 0 maps onto a smaller concentric surface (the inside of the shell)."""
    if not polys:
        return []
    a = np.concatenate([np.asarray(q, np.float64) for q in polys])
    cr, sr = np.cos(p["roll"]), np.sin(p["roll"])
    s, t = a[:, 0] * cr - a[:, 1] * sr, a[:, 0] * sr + a[:, 1] * cr + p["face_y"]
    t = np.clip(t, -0.95, 0.95)
    x = np.sin(np.clip(s + p["yaw"], -1.5, 1.5)) * np.sqrt(1 - t * t)
    out = np.stack([p["cx"] + p["rx"] * x * (1 - inset), p["cy"] + p["ry"] * t * (1 - inset)], 1)
    return np.split(out, np.cumsum([len(q) for q in polys])[:-1])


def _params(rng: np.random.Generator, cx: float, cy: float, rx: float) -> dict:
    """Random shape, colour and lighting for one pumpkin."""
    pale = rng.random() < 0.07
    hue = rng.uniform(25, 38) if pale else rng.uniform(14, 38)
    sat = rng.uniform(0.5, 0.75) if pale else rng.uniform(0.85, 1.0)
    color = 1 - sat * (1 - _rgb(1.0, hue / 60.0, 0.0))
    side = rng.choice([-1.0, 1.0])
    light = np.array([side * rng.uniform(0.3, 0.9), -rng.uniform(0.1, 0.6), rng.uniform(0.4, 0.9)])
    aspect = rng.uniform(0.72, 1.0) if rng.random() > 0.15 else rng.uniform(1.0, 1.2)
    return dict(
        cx=cx,
        cy=cy,
        rx=rx,
        ry=rx * aspect,
        stem_x=cx + rx * rng.uniform(-0.08, 0.08),
        ribs=rng.uniform(4.5, 8.0),
        phase=rng.uniform(0, 1),
        scallop=rng.uniform(0.02, 0.07),
        dimple=rng.uniform(0.04, 0.12),
        bulge=rng.uniform(0.25, 0.6),
        light=[float(c) for c in light / np.linalg.norm(light)],
        shine=rng.uniform(8, 40),
        spec=rng.uniform(0.1, 0.6),
        ambient=rng.uniform(0.1, 0.35),
        key=rng.uniform(0.6, 1.0),
        color=color,
        exposure=rng.uniform(0.4, 1.1),
        lid=rng.choice(3, p=[0.55, 0.3, 0.15]),
        yaw=rng.uniform(-0.25, 0.25),
        roll=rng.uniform(-0.12, 0.12),
        face_y=rng.uniform(-0.05, 0.1),
    )


def _carve(rng: np.random.Generator, img: Array, body: Array, p: dict, ss: int) -> None:
    """Cut the face and light it from inside: glowing core, lit cut wall, bloom."""
    cuts, teeth = _face(rng)
    n = len(cuts)
    outer = _to_pixels(cuts + teeth, p)
    front = _mask(outer[:n], body.shape, ss, holes=outer[n:]) * body
    # The inner opening of each cut sits on the smaller inner surface, so it is shifted towards
    # the centre; the part of the front opening it doesn't cover shows the cut flesh wall.
    inner = _to_pixels(cuts + teeth, p, inset=rng.uniform(0.05, 0.12))
    back = _mask(inner[:n], body.shape, ss, holes=inner[n:]) * front
    wall = np.clip(front - back, 0, 1)
    glow = rng.uniform(0.85, 1.25)
    core_col = _rgb(1.0, rng.uniform(0.8, 0.95), rng.uniform(0.35, 0.65)) * glow
    rim_col = _rgb(0.85, rng.uniform(0.3, 0.45), 0.05) * glow
    wall_col = _rgb(1.0, rng.uniform(0.55, 0.7), 0.2) * (glow * rng.uniform(0.6, 0.95))
    depth = _blur(back, max(0.04 * p["rx"], 0.5))  # 1 deep inside large holes, less at edges
    hot = np.clip((depth - 0.15) / 0.6, 0, 1)
    inside = rim_col + (core_col - rim_col) * hot
    img[:] = img * (1 - back - wall) + inside * back + wall_col * wall
    # Bloom: a tight glow around the cuts and a wide faint one onto the skin and backdrop.
    bloom = 0.5 * _blur(back, max(0.08 * p["rx"], 0.7)) + 0.35 * _blur(back, 0.3 * p["rx"])
    img += bloom * _rgb(1.0, 0.55, 0.15) * (glow * rng.uniform(0.5, 1.0))


def _pumpkin(
    rng: np.random.Generator,
    img: Array,
    yy: Array,
    xx: Array,
    p: dict,
    ss: int,
    carved: bool = True,
) -> None:
    """Body, optional carved face and lid cut, then the stem, composited onto `img`."""
    body = _body(rng, img, yy, xx, p)
    if carved:
        _carve(rng, img, body, p, ss)
    if p["lid"]:
        _lid(rng, img, body, p, ss, glow=carved and p["lid"] > 1)
    _stem(rng, img, yy, xx, p, ss)


def _render_chw(rng: np.random.Generator, size: int) -> Array:
    """One jack-o'-lantern as a (3, size, size) uint8 array (channels first is faster here)."""
    ss = 4 if size <= 32 else 3 if size <= 64 else 2  # supersampling for drawn shapes
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    img = _background(rng, yy, xx, size)
    # Main pumpkin: mostly centred; some offset; a few so big or far out the frame crops them.
    rx = size * (rng.uniform(0.28, 0.42) if rng.random() > 0.1 else rng.uniform(0.42, 0.55))
    off = 0.06 if rng.random() > 0.2 else 0.18
    cx = size * (0.5 + rng.uniform(-off, off))
    cy = size * (0.55 + rng.uniform(-off, off) * 0.6)
    p = _params(rng, cx, cy, rx)
    extra = rng.random()
    if extra < 0.15:
        _ground(rng, img, yy, xx, cx, cy, rx, p["ry"])
    elif extra < 0.27:  # a smaller pumpkin behind, to one side, partly hidden
        side = rng.choice([-1.0, 1.0])
        r2 = rx * rng.uniform(0.45, 0.7)
        qx = min(max(cx + side * (rx + r2 * rng.uniform(-0.4, 0.3)), 0.2 * r2), size - 0.2 * r2)
        q = _params(rng, qx, cy + p["ry"] - r2 * rng.uniform(0.9, 1.2), r2)
        q["exposure"] *= 0.6
        _pumpkin(rng, img, yy, xx, q, ss, carved=rng.random() < 0.5)
    _pumpkin(rng, img, yy, xx, p, ss)
    img += rng.standard_normal((size, size), np.float32) * 0.012  # sensor grain
    # Soft shoulder instead of a hard clip so the glow core saturates gracefully.
    img = np.where(img < 0.8, img, 0.8 + 0.2 * np.tanh((img - 0.8) / 0.2))
    return np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)


def render(rng: np.random.Generator, size: int) -> np.ndarray:
    """One jack-o'-lantern as a (size, size, 3) uint8 RGB array."""
    return np.ascontiguousarray(_render_chw(rng, size).transpose(1, 2, 0))


def generate(num_images: int, size: int, seed: int = 0) -> np.ndarray:
    """`num_images` jack-o'-lanterns as a (num_images, 3, size, size) uint8 array (channels first).

    Image i depends only on (seed, i), so results don't depend on batching and any subset can be
    regenerated.
    """
    out = np.empty((num_images, 3, size, size), np.uint8)
    for i in range(num_images):
        out[i] = _render_chw(np.random.default_rng([seed, i]), size)
    return out
