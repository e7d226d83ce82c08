import cv2
import numpy as np
import pytest

from cellclf_utils.data import images
from conftest import write_image


def _png(img):
    ok, buf = cv2.imencode(".png", img)
    return buf.tobytes()


def test_colour_is_rgb():
    bgr = np.zeros((4, 4, 3), np.uint8)
    bgr[..., 0] = 255  # blue in OpenCV's order
    out = images.decode_bytes(_png(bgr))
    assert out.dtype == np.uint8 and out.shape == (4, 4, 3)
    assert (out[..., 2] == 255).all() and (out[..., 0] == 0).all()


def test_gray_rgba_and_16bit():
    gray = np.full((5, 7), 100, np.uint8)
    assert (images.decode_bytes(_png(gray)) == 100).all()
    rgba = np.zeros((4, 4, 4), np.uint8)  # fully transparent black -> white background
    assert (images.decode_bytes(_png(rgba)) == 255).all()
    rgba[..., 3] = 255
    assert (images.decode_bytes(_png(rgba)) == 0).all()
    deep = np.full((4, 4, 3), 65535, np.uint16)
    deep[0, 0] = 256
    out = images.decode_bytes(_png(deep))
    assert out.dtype == np.uint8 and out[1, 1, 0] == 255 and out[0, 0, 0] == 1


@pytest.mark.parametrize("data, reason", [
    (b"", "empty file"),
    (b"this is text, not a picture", "not a decodable image"),
])
def test_bad_bytes_name_the_file(data, reason):
    with pytest.raises(images.BadImageError, match=reason) as e:
        images.decode_bytes(data, "some/where.png")
    assert e.value.path == "some/where.png"


def test_truncated_jpeg_is_refused():
    ok, buf = cv2.imencode(".jpg", np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    data = buf.tobytes()
    assert images.decode_bytes(data).shape == (64, 64, 3)
    with pytest.raises(images.BadImageError, match="truncated JPEG"):
        images.decode_bytes(data[: len(data) // 2])


def test_missing_file(tmp_path):
    with pytest.raises(images.BadImageError, match="file not found"):
        images.read_image(tmp_path / "nope.png")


@pytest.mark.parametrize("policy", images.RESIZE_POLICIES)
def test_resize_policies_give_squares(policy):
    img = np.zeros((30, 60, 3), np.uint8)
    img[:, 25:35] = 255  # a bright bar in the middle
    out = images.resize(img, 20, policy)
    assert out.shape == (20, 20, 3)
    assert out[10, 10].max() > 100  # the centre survives every policy


def test_pad_keeps_aspect_ratio():
    img = np.zeros((10, 40, 3), np.uint8)
    img[:, :, 1] = 200
    out = images.resize(img, 40, "pad")
    # padding replicates edges, so the whole square stays the same colour
    assert (out[..., 1] == 200).all()


def test_unknown_policy():
    with pytest.raises(ValueError, match="pad, crop, stretch"):
        images.resize(np.zeros((4, 4, 3), np.uint8), 2, "squash")


def _jpeg_with_orientation(a, orientation):
    import io
    from PIL import Image
    im = Image.fromarray(a)
    exif = im.getexif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    im.save(buf, "JPEG", exif=exif.tobytes(), quality=95)
    return buf.getvalue()


@pytest.mark.parametrize("orientation", range(1, 9))
def test_a_jpeg_is_turned_upright_by_its_exif_orientation_as_pillow_shows_it(orientation):
    import io
    from PIL import Image, ImageOps
    a = np.zeros((40, 60, 3), np.uint8)
    a[:10, :20], a[30:] = (255, 0, 0), (0, 0, 255)
    data = _jpeg_with_orientation(a, orientation)
    shown = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))
    np.testing.assert_array_equal(images.decode_bytes(data), shown)


def test_a_jpeg_with_bytes_after_its_end_is_read_and_a_cut_one_refused():
    data = _jpeg_with_orientation(np.full((16, 16, 3), 90, np.uint8), 1)
    np.testing.assert_array_equal(images.decode_bytes(data + b"camera trailer" * 10), images.decode_bytes(data))
    with pytest.raises(images.BadImageError, match="truncated JPEG"):
        images.decode_bytes(data[: len(data) // 2])


def test_12_bit_data_in_a_16_bit_png_is_scaled_by_its_real_depth_as_pillow_reads_it(tmp_path):
    from PIL import Image
    grey = (np.arange(64 * 64).reshape(64, 64) % 4096).astype(np.uint16)  # a 12-bit camera's range
    path = write_image(tmp_path / "twelve.png", grey)
    raw = np.asarray(Image.open(path)).astype(np.uint16)
    assert images.bit_depth(raw) == 12
    np.testing.assert_array_equal(images.read_image(path)[..., 0], (raw >> 4).astype(np.uint8))
    assert len(np.unique(images.read_image(path))) == 256  # not the ~16 grey levels of >> 8
    full = write_image(tmp_path / "sixteen.png", (grey.astype(np.uint32) * 16).astype(np.uint16))
    assert images.bit_depth(np.asarray(Image.open(full)).astype(np.uint16)) == 16


@pytest.mark.parametrize("suffix", [".tif", ".png", ".webp"])
def test_a_multi_frame_file_is_read_as_its_first_frame_as_pillow_shows_it(tmp_path, suffix):
    from PIL import Image
    frames = [np.full((12, 20, 3), v, np.uint8) for v in (40, 120, 200)]
    path = tmp_path / f"stack{suffix}"
    pil = [Image.fromarray(f) for f in frames]
    # TIFF pages, an animated PNG and an animated WebP: the formats read that hold several frames
    pil[0].save(path, save_all=True, append_images=pil[1:], **({"lossless": True} if suffix == ".webp" else {}))
    data = path.read_bytes()
    assert images.frame_count(data) == 3
    with Image.open(path) as first:  # a viewer shows frame 0
        np.testing.assert_array_equal(images.read_image(path), np.asarray(first.convert("RGB")))
    single = write_image(tmp_path / f"one{suffix}", frames[0], suffix)
    assert images.frame_count(single.read_bytes()) == 1
