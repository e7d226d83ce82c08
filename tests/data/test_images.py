import cv2
import numpy as np
import pytest

from cellclf_utils.data import images


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
