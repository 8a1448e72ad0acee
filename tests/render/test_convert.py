"""Tests for images_to_rgba: value mapping, channel counts, resizing and letterboxing."""

from __future__ import annotations

import pytest
import torch

from oscgan.render.convert import images_to_rgba


def test_value_mapping_and_clamping() -> None:
    values = torch.tensor([-5.0, -1.0, -0.5, 0.0, 0.5, 1.0, 5.0])
    img = values.reshape(1, 1, 1, -1).expand(1, 3, 1, -1)
    out = images_to_rgba(img)
    assert out.dtype == torch.uint8 and out.shape == (1, 1, 7, 4)
    assert out[0, 0, :, 0].tolist() == [0, 0, 64, 128, 191, 255, 255]
    assert (out[..., 3] == 255).all()


def test_one_channel_is_grey() -> None:
    img = torch.tensor([[-1.0, 0.0], [0.5, 1.0]]).reshape(1, 1, 2, 2)
    out = images_to_rgba(img)
    assert out.shape == (1, 2, 2, 4)
    assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()
    assert out[0, :, :, 0].tolist() == [[0, 128], [191, 255]]
    assert (out[..., 3] == 255).all()


def test_three_channels_keep_their_order() -> None:
    img = torch.stack([torch.full((2, 2), -1.0), torch.zeros(2, 2), torch.ones(2, 2)])[None]
    out = images_to_rgba(img)
    assert out[0, 0, 0].tolist() == [0, 128, 255, 255]


def test_four_channels_carry_alpha() -> None:
    img = torch.tensor([1.0, 0.0, -1.0, -1.0]).reshape(1, 4, 1, 1)
    assert images_to_rgba(img)[0, 0, 0].tolist() == [255, 128, 0, 0]


def test_batch_and_layout() -> None:
    img = torch.zeros(2, 3, 5, 7)
    img[1] = 1.0
    out = images_to_rgba(img)
    assert out.shape == (2, 5, 7, 4) and out.is_contiguous()
    assert (out[0, ..., :3] == 128).all() and (out[1, ..., :3] == 255).all()


def test_resize_stretch() -> None:
    img = torch.zeros(1, 3, 8, 8)
    out = images_to_rgba(img, size=(12, 6))
    assert out.shape == (1, 6, 12, 4)
    assert (out[..., :3] == 128).all()  # a flat picture stays flat


def test_native_size_is_not_resampled() -> None:
    g = torch.Generator().manual_seed(0)
    img = torch.rand(1, 3, 8, 8, generator=g) * 2 - 1
    assert torch.equal(images_to_rgba(img, size=(8, 8)), images_to_rgba(img))


def test_letterbox_wide_output_has_bars_left_and_right() -> None:
    img = torch.ones(1, 3, 8, 8)
    out = images_to_rgba(img, size=(16, 8), fit="letterbox")
    assert out.shape == (1, 8, 16, 4)
    assert (out[0, :, :4, :3] == 0).all() and (out[0, :, 12:, :3] == 0).all()
    assert (out[0, :, 4:12, :3] == 255).all()
    assert (out[..., 3] == 255).all()  # RGB models: opaque bars


def test_letterbox_tall_output_has_bars_top_and_bottom() -> None:
    img = torch.ones(1, 3, 8, 16)
    out = images_to_rgba(img, size=(16, 24), fit="letterbox")
    assert out.shape == (1, 24, 16, 4)
    assert (out[0, :8, :, :3] == 0).all() and (out[0, 16:, :, :3] == 0).all()
    assert (out[0, 8:16, :, :3] == 255).all()


def test_letterbox_bars_of_rgba_models_are_transparent() -> None:
    img = torch.ones(1, 4, 8, 8)
    out = images_to_rgba(img, size=(16, 8), fit="letterbox")
    assert (out[0, :, :4, 3] == 0).all() and (out[0, :, 4:12, 3] == 255).all()


def test_letterbox_scales_the_picture_to_fit() -> None:
    img = torch.ones(1, 3, 4, 4)
    out = images_to_rgba(img, size=(32, 16), fit="letterbox")  # 4x4 -> 16x16 in the middle
    assert (out[0, :, 8:24, :3] == 255).all()
    assert (out[0, :, :8, :3] == 0).all() and (out[0, :, 24:, :3] == 0).all()


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="expected images"):
        images_to_rgba(torch.zeros(3, 8, 8))
    with pytest.raises(ValueError, match="fit must be"):
        images_to_rgba(torch.zeros(1, 3, 8, 8), size=(16, 8), fit="crop")


def test_two_channels_are_grey_plus_alpha():
    import torch

    from oscgan.render.convert import images_to_rgba

    img = torch.stack([torch.full((4, 4), 1.0), torch.full((4, 4), -1.0)])[None]  # [1, 2, 4, 4]
    out = images_to_rgba(img)
    assert out.shape == (1, 4, 4, 4)
    assert out[0, 0, 0].tolist() == [255, 255, 255, 0]
