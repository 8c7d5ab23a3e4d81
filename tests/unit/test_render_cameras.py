"""Cameras: hand-computed projections, pixel conventions, no input mutation, gradients."""

import math

import pytest
import torch

from albedogan.render import PerspectiveCamera, WeakPerspectiveCamera, ndc_to_pixels, pixels_to_ndc
from albedogan.render import weak_perspective_project


def test_weak_perspective_hand_numbers():
    pts = torch.tensor([[[0.1, 0.2, 0.3], [-0.05, 0.0, -0.1]]])
    cam = torch.tensor([[8.0, 0.01, -0.02]])
    out = weak_perspective_project(pts, cam)
    expected = torch.tensor([[[8 * 0.11, -8 * 0.18, -8 * 0.3], [8 * -0.04, -8 * -0.02, 8 * 0.1]]])
    torch.testing.assert_close(out, expected)


def test_weak_perspective_does_not_modify_inputs_and_batches():
    pts = torch.randn(2, 5, 3, dtype=torch.float64)
    cam = torch.tensor([[2.0, 0.1, 0.2], [3.0, -0.1, 0.0]], dtype=torch.float64)
    p0, c0 = pts.clone(), cam.clone()
    out = WeakPerspectiveCamera(cam).transform_points(pts)
    assert torch.equal(pts, p0) and torch.equal(cam, c0)
    assert out.dtype == torch.float64
    for i in range(2):  # batch element i only depends on camera i
        torch.testing.assert_close(out[i : i + 1], weak_perspective_project(pts[i : i + 1], cam[i : i + 1]))
    # a (3,) camera broadcasts
    broadcast = WeakPerspectiveCamera(cam[0]).transform_points(pts)
    torch.testing.assert_close(broadcast[1], weak_perspective_project(pts[1:], cam[:1])[0])


def test_weak_perspective_gradcheck():
    pts = torch.randn(2, 4, 3, dtype=torch.float64, requires_grad=True)
    cam = torch.tensor([[2.0, 0.1, 0.2], [3.0, -0.1, 0.0]], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(weak_perspective_project, (pts, cam))


def test_perspective_facing_hand_numbers():
    cam = PerspectiveCamera.facing(1, distance=2.0, fov_degrees=90.0, dtype=torch.float64)
    assert cam.focal_length[0, 0].item() == pytest.approx(1.0)
    pts = torch.tensor([[[0.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.0, 0.0, 1.0]]], dtype=torch.float64)
    out = cam.transform_points(pts)
    # world +Y up -> image y down; point nearer the camera (z = 1) has smaller depth
    expected = torch.tensor([[[0.0, 0.0, 2.0], [0.25, -0.25, 2.0], [0.0, 0.0, 1.0]]], dtype=torch.float64)
    torch.testing.assert_close(out, expected)
    assert PerspectiveCamera.fov_to_focal(60.0) == pytest.approx(1 / math.tan(math.radians(30)))


def test_perspective_gradcheck_wrt_pose_and_focal():
    R = torch.linalg.matrix_exp(torch.tensor([[[0, -0.1, 0.2], [0.1, 0, -0.3], [-0.2, 0.3, 0]]], dtype=torch.float64))
    R = (R @ torch.diag(torch.tensor([1.0, -1, -1], dtype=torch.float64))).requires_grad_(True)
    T = torch.tensor([[0.1, 0.0, 3.0]], dtype=torch.float64, requires_grad=True)
    f = torch.tensor([2.0], dtype=torch.float64, requires_grad=True)
    pts = torch.randn(1, 6, 3, dtype=torch.float64) * 0.2
    fn = lambda R, T, f: PerspectiveCamera(R, T, f).transform_points(pts)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (R, T, f))


def test_pixel_conventions_round_trip():
    # (H, W) = (4, 8): the centre of pixel (col 0, row 0) is NDC (-1 + 1/8, -1 + 1/4)
    ndc = torch.tensor([[-1 + 1 / 8, -1 + 1 / 4, 0.7], [-1.0, -1.0, 0.0], [1.0, 1.0, 0.0]])
    px = ndc_to_pixels(ndc, (4, 8))
    torch.testing.assert_close(px, torch.tensor([[0.0, 0.0, 0.7], [-0.5, -0.5, 0.0], [7.5, 3.5, 0.0]]))
    torch.testing.assert_close(pixels_to_ndc(px, (4, 8)), ndc)


def test_bad_camera_shape_is_one_clear_error():
    with pytest.raises(ValueError, match="cam"):
        weak_perspective_project(torch.zeros(2, 3, 3), torch.zeros(2, 4))
