"""`folder:/abs/path` data sets: any folder of images, centre-cropped, resized, RGB or grayscale."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ihdm_core.training.checks import ConfigError
import torch
from PIL import Image

from ihdm_core import get_preset
from ihdm_core.training.config import DataConfig
from ihdm_core.training.data import DatasetUnavailable, load_dataset
from ihdm_core.model.images import to_float

ROOT = Path(__file__).resolve().parent.parent


def _stack(ds) -> torch.Tensor:
    return torch.stack([ds[i] for i in range(len(ds))])


def _stripes(w: int, h: int, side, centre) -> Image.Image:
    """A landscape image whose centre square is ``centre`` and whose side bands are ``side``:
    a correct centre crop sees only the centre colour."""
    arr = np.empty((h, w, 3), np.uint8)
    arr[:] = side
    off = (w - h) // 2
    arr[:, off:off + h] = centre
    return Image.fromarray(arr)


def test_rgb_folder_is_centre_cropped_and_resized(tmp_path):
    (tmp_path / "sub").mkdir()
    _stripes(80, 40, (255, 0, 0), (10, 200, 30)).save(tmp_path / "a.png")
    _stripes(50, 30, (0, 0, 255), (120, 60, 240)).save(tmp_path / "sub" / "b.jpg", quality=100)
    Image.new("RGB", (16, 16), (7, 8, 9)).save(tmp_path / "c.bmp")
    ds = load_dataset(DataConfig(dataset=f"folder:{tmp_path}", image_size=16, channels=3))
    x = _stack(ds)
    assert x.shape == (3, 3, 16, 16) and x.dtype == torch.uint8
    # files sorted by path: a.png, c.bmp, sub/b.jpg; the side bands must not leak into the crop
    assert torch.all(x[0] == torch.tensor([10, 200, 30], dtype=torch.uint8)[:, None, None])
    assert torch.all(x[1] == torch.tensor([7, 8, 9], dtype=torch.uint8)[:, None, None])
    # JPEG smears chroma a few pixels across the band edge; the interior is the centre colour
    assert (x[2, :, :, 3:-3].int() - torch.tensor([120, 60, 240])[:, None, None]).abs().max() <= 4
    f = to_float(x)
    assert f.dtype == torch.float32 and 0 <= float(f.min()) and float(f.max()) <= 1


def test_grayscale_and_mixed_sizes(tmp_path):
    sizes = [(30, 50), (100, 64), (12, 12), (64, 100)]
    for i, (w, h) in enumerate(sizes):
        Image.new("RGB", (w, h), (200, 100, 50 + i)).save(tmp_path / f"{i}.png")
    Image.new("L", (20, 33), 77).save(tmp_path / "gray.png")
    ds = load_dataset(DataConfig(dataset=f"folder:{tmp_path}", image_size=24, channels=1))
    x = _stack(ds)
    assert x.shape == (5, 1, 24, 24) and x.dtype == torch.uint8
    # PIL's RGB -> L is the ITU-R 601 luma, rounded: (299 R + 587 G + 114 B) / 1000
    for i in range(4):
        luma = (299 * 200 + 587 * 100 + 114 * (50 + i)) / 1000
        assert torch.all(x[i] == round(luma)), (i, x[i].unique())
    assert torch.all(x[4] == 77)
    rgb = _stack(load_dataset(DataConfig(dataset=f"folder:{tmp_path}", image_size=24, channels=3)))
    assert rgb.shape == (5, 3, 24, 24) and torch.all(rgb[4] == 77)  # gray -> RGB repeats the channel


def test_limit_and_unreadable_files_are_skipped(tmp_path):
    for i in range(4):
        Image.new("RGB", (10, 10), (i, i, i)).save(tmp_path / f"{i}.png")
    (tmp_path / "broken.png").write_bytes(b"not an image")
    with pytest.warns(UserWarning, match="1 unreadable"):
        ds = load_dataset(DataConfig(dataset=f"folder:{tmp_path}", image_size=10, channels=3, limit=3))
    assert len(ds) == 3


def test_empty_or_bad_folder_is_a_clear_error(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no images here")
    with pytest.raises(DatasetUnavailable, match=f"no readable images .* below {empty}"):
        load_dataset(DataConfig(dataset=f"folder:{empty}", image_size=8, channels=3))
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "fake.jpg").write_bytes(b"\x00" * 64)
    with pytest.raises(DatasetUnavailable, match=str(junk)):
        load_dataset(DataConfig(dataset=f"folder:{junk}", image_size=8, channels=3))
    with pytest.raises(DatasetUnavailable, match="is not a folder"):
        load_dataset(DataConfig(dataset=f"folder:{tmp_path / 'missing'}", image_size=8, channels=3))
    # Names the config cannot hold are refused when it is built, before any data is read.
    with pytest.raises(ConfigError, match="absolute path"):
        DataConfig(dataset="folder:relative/dir", image_size=8, channels=3)
    with pytest.raises(ConfigError, match="no-such-set"):
        DataConfig(dataset="no-such-set", image_size=8, channels=3)


def test_cli_trains_on_a_folder(tmp_path):
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        Image.fromarray(rng.integers(0, 256, (20 + i, 16, 3), dtype=np.uint8)).save(imgs / f"{i}.png")
    env = dict(os.environ, IHDM_RUNS=str(tmp_path / "runs"), PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-m", "ihdm_core", "train", "--preset", "mnist-smoke", "--set",
                          f"data.dataset=folder:{imgs}", "data.image_size=16", "data.channels=3",
                          "data.limit=null", "train.steps=2", "model.base_channels=8",
                          "model.attn_resolutions=[]", "--device", "cpu"],
                         env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    info = json.loads(out.stdout.strip().splitlines()[-1])
    assert info["step"] == 2
    assert get_preset("mnist-smoke").data.dataset == "mnist5k"
