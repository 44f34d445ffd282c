"""Exercises of lesson 03 (differentiable rendering), with facelib's reference implementations."""

from __future__ import annotations

import torch

from facelib.course.check import Exercise, expect, expect_close, expect_tensor
from facelib.losses.photometric import photometric_loss  # the reference of exercise 3.3
from facelib.render.camera import Camera
from facelib.morphable import load_open_model
from facelib.render import FaceRenderer
from facelib.render.rasterize import rasterize
from facelib.render.sample import sample_image, vertex_visibility
from facelib.render.sample import sample_vertex_colors


def project(points: torch.Tensor, focal: float, image_size: int, distance: float = 10.0) -> torch.Tensor:
    """Pinhole projection of posed points by a camera at (0, 0, distance) looking down -z.

    With depth d = distance - z and the principal point at the image centre c = S / 2:

        x_pix = c + f x / d,    y_pix = c - f y / d    (image y points down),

    Args:
        points: (B, V, 3) posed points.
        focal: focal length f in pixels.
        image_size: S, the side of the square image.
        distance: the camera's position on the z axis.

    Returns:
        (B, V, 3): pixel x, pixel y, depth d.
    """
    depth = distance - points[..., 2]
    centre = image_size / 2.0
    x = centre + focal * points[..., 0] / depth
    y = centre - focal * points[..., 1] / depth
    return torch.stack([x, y, depth], -1)


def _test_project(answer) -> None:
    g = torch.Generator().manual_seed(7)
    points = torch.randn(2, 50, 3, generator=g, dtype=torch.float64)
    out = expect_tensor(answer(points, 1015.0, 224), "the projected points", (2, 50, 3))
    centre = answer(torch.zeros(1, 1, 3, dtype=torch.float64), 1015.0, 224)
    expect_close(centre[0, 0, :2], torch.tensor([112.0, 112.0], dtype=torch.float64), "the projection of the origin (it should land on the image centre)")
    above = answer(torch.tensor([[[0.0, 1.0, 0.0]]], dtype=torch.float64), 1015.0, 224)
    expect(bool(above[0, 0, 1] < 112), "a point above the axis (y > 0) should land in the upper half of the image: image y points down")
    expect_close(out[..., 2], 10.0 - points[..., 2], "the depths (distance - z)")
    expect_close(out, Camera(image_size=(224, 224), focal=1015.0).project(points), "the projected points")


project_exercise = Exercise(
    "Exercise 3.1: the pinhole camera", project, _test_project,
    "Depth is distance - z. Divide x and y by the depth, multiply by the focal length, and add the image centre; flip the sign of y.",
)


def rasterize_naive(screen: torch.Tensor, faces: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """A z-buffer, one triangle at a time: which triangle is visible at each pixel centre.

    For every triangle: take the pixel centres (j + 0.5, i + 0.5) inside its bounding box; keep
    those on the inner side of all three edges (edge functions of one sign); compute the depth
    there from the barycentric weights w_i, as 1 / sum_i (w_i / z_i), because after a perspective
    projection it is 1 / z that varies linearly across the screen; where it is nearer
    than the z-buffer, write the depth and the triangle's index.

    Args:
        screen: (V, 3) projected vertices (pixel x, pixel y, depth).
        faces: (F, 3) triangles.
        height, width: image size.

    Returns:
        (H, W) long: the visible triangle's index, -1 where no triangle covers the pixel.
    """
    zbuf = torch.full((height, width), float("inf"), dtype=screen.dtype)
    pix_to_face = torch.full((height, width), -1, dtype=torch.long)
    for index, (a, b, c) in enumerate(screen[faces]):
        x0 = max(int(torch.ceil(min(a[0], b[0], c[0]) - 0.5)), 0)
        x1 = min(int(torch.floor(max(a[0], b[0], c[0]) - 0.5)), width - 1)
        y0 = max(int(torch.ceil(min(a[1], b[1], c[1]) - 0.5)), 0)
        y1 = min(int(torch.floor(max(a[1], b[1], c[1]) - 0.5)), height - 1)
        if x1 < x0 or y1 < y0:
            continue
        ys, xs = torch.meshgrid(torch.arange(y0, y1 + 1, dtype=screen.dtype) + 0.5,
                                torch.arange(x0, x1 + 1, dtype=screen.dtype) + 0.5, indexing="ij")
        area = (b[0] - a[0]) * (c[1] - a[1]) - (c[0] - a[0]) * (b[1] - a[1])
        if area.abs() < 1e-12:
            continue
        w0 = ((b[0] - xs) * (c[1] - ys) - (c[0] - xs) * (b[1] - ys)) / area
        w1 = ((c[0] - xs) * (a[1] - ys) - (a[0] - xs) * (c[1] - ys)) / area
        w2 = 1 - w0 - w1
        inside = (w0 >= 0) & (w1 >= 0) & (w2 >= 0)
        # Depth is not linear in screen space, its inverse is: interpolate 1 / z.
        depth = 1.0 / (w0 / a[2] + w1 / b[2] + w2 / c[2])
        region = zbuf[y0:y1 + 1, x0:x1 + 1]
        nearer = inside & (depth < region)
        region[nearer] = depth[nearer]
        pix_to_face[y0:y1 + 1, x0:x1 + 1][nearer] = index
    return pix_to_face


def _test_rasterize_naive(answer) -> None:
    # Two overlapping triangles, the second in front: it must win where they overlap.
    screen = torch.tensor([[2.0, 2.0, 5.0], [14.0, 3.0, 5.0], [4.0, 14.0, 5.0],
                           [6.0, 1.0, 3.0], [15.0, 12.0, 3.0], [3.0, 11.0, 3.0]])
    faces = torch.tensor([[0, 1, 2], [3, 4, 5]])
    out = expect_tensor(answer(screen, faces, 16, 16), "pix_to_face", (16, 16))
    expect(out.dtype in (torch.int64, torch.int32), f"pix_to_face should hold integer triangle indices, got {out.dtype}")
    expect(bool((out == -1).any()), "pixels that no triangle covers should hold -1")
    expect(bool((out == 0).any()) and bool((out == 1).any()), "both triangles should be visible somewhere")
    expect(int(out[8, 8]) == 1, "where the triangles overlap, the nearer one (smaller depth) should win: check the z-buffer test")
    flipped = answer(screen, faces[:, [0, 2, 1]], 16, 16)
    expect(torch.equal(flipped.long(), out.long()), "the result changed when the triangles' vertex order was reversed: accept both windings (edge functions all >= 0 or all <= 0, or divide by the signed area)")
    g = torch.Generator().manual_seed(8)
    screen = torch.rand(40, 3, generator=g) * torch.tensor([24.0, 20.0, 2.0]) + torch.tensor([0.0, 0.0, 4.0])
    faces = torch.randint(0, 40, (30, 3), generator=g)
    reference = rasterize(screen[None], faces, (20, 24)).pix_to_face[0]
    agreement = (answer(screen, faces, 20, 24).long() == reference).float().mean().item()
    expect(agreement > 0.98, f"on random triangles your z-buffer agrees with facelib's on {agreement:.1%} of the pixels (expected > 98%): "
                             "check the pixel centres (+0.5), the bounding boxes, and that the depth is interpolated as 1 / z")


rasterize_exercise = Exercise(
    "Exercise 3.2: a z-buffer from scratch", rasterize_naive, _test_rasterize_naive,
    "Loop over triangles. Barycentric weights are edge functions divided by the signed area (so both windings work); "
    "inside means all three weights >= 0. The depth there is 1 / (w0 / z0 + w1 / z1 + w2 / z2); keep it where it beats the z-buffer.",
)


def _test_photometric_loss(answer) -> None:
    g = torch.Generator().manual_seed(9)
    a, b = torch.rand(2, 6, 5, 3, generator=g), torch.rand(2, 6, 5, 3, generator=g)
    mask = (torch.rand(2, 6, 5, generator=g) > 0.3).float()
    out = expect_tensor(answer(a, b, mask), "the loss", ())
    expect(float(answer(a, a, mask)) < 1e-3, "identical images should give (almost) zero loss")
    shift = answer(b + 0.1, b, torch.ones(2, 6, 5))
    expect(abs(float(shift) - 0.1 * 3**0.5) < 1e-3, "a uniform shift of 0.1 in R, G and B should cost 0.1 * sqrt(3): "
                                                     "use the Euclidean RGB distance per pixel (not squared, not a mean over channels)")
    c = a.clone()
    c[mask == 0] += 5.0
    expect(abs(float(answer(c, b, mask)) - float(out)) < 1e-5, "pixels outside the mask should not change the loss")
    half = mask.clone()
    half[1] = 0
    expect_close(answer(a, b, half), photometric_loss(a[:1], b[:1], mask[:1]) / 2, "the loss when the second image's mask is empty "
                 "(normalise each image by its own mask area, clamped to at least 1, then average the images)", atol=1e-5)
    expect_close(out, photometric_loss(a, b, mask), "the loss", atol=1e-5)


photometric_loss_exercise = Exercise(
    "Exercise 3.3: the photometric loss", photometric_loss, _test_photometric_loss,
    "Per pixel: the square root of the summed squared RGB differences. Multiply by the mask, sum per image, divide by that "
    "image's mask sum (clamped to >= 1), then average over the batch.",
)


def vertex_colors(image: torch.Tensor, screen: torch.Tensor, zbuf: torch.Tensor, normals: torch.Tensor, points: torch.Tensor,
                  camera_distance: float = 10.0, tolerance: float = 0.01) -> tuple[torch.Tensor, torch.Tensor]:
    """T_p: the photo's colour at each projected vertex, and whether the vertex is visible there.

    A vertex is visible when it projects inside the image, faces the camera (n . (c - p) > 0, the
    camera at c = (0, 0, camera_distance)) and passes the depth test ``depth <= z + tolerance * depth``
    against the z-buffer's depth z at a covered pixel around its projection. Its colour is the
    bilinear sample of the image (:func:`facelib.render.sample_image`), zero where hidden.

    Args:
        image: (B, H, W, 3). screen: (B, V, 3) pixel x, pixel y, depth. zbuf: (B, H, W), -1 on background.
        normals, points: (B, V, 3) posed normals and vertices.

    Returns:
        colors (B, V, 3) and visibility (B, V) 0/1 float.
    """
    s = sample_vertex_colors(image, screen, zbuf, normals, points, camera_distance, tolerance)
    return s.colors, s.visibility


def _scene() -> tuple[torch.Tensor, ...]:
    """A 4 x 4 image and z-buffer with six vertices, one per rule."""
    image = torch.arange(48, dtype=torch.float64).view(1, 4, 4, 3) / 48
    zbuf = torch.full((1, 4, 4), 9.0, dtype=torch.float64)
    zbuf[0, :, 3] = -1.0  # the right column is background
    screen = torch.tensor([[[1.5, 1.5, 9.0],    # in front, facing: visible
                            [2.5, 0.5, 9.8],    # behind the surface there (hidden by the z-buffer)
                            [5.0, 1.0, 9.0],    # outside the image
                            [3.5, 2.5, 9.0],    # on the background: nothing rendered covers it
                            [0.5, 2.5, 9.0],    # back-facing
                            [1.2, 2.7, 9.05]]], dtype=torch.float64)  # just behind, inside the tolerance: visible
    normals = torch.tensor([[[0, 0, 1.0]] * 4 + [[0, 0, -1.0]] + [[0, 0, 1.0]]], dtype=torch.float64)
    points = torch.zeros(1, 6, 3, dtype=torch.float64)
    points[..., 2] = 10.0 - screen[..., 2]
    return image, screen, zbuf, normals, points


def _test_vertex_colors(answer) -> None:
    image, screen, zbuf, normals, points = _scene()
    out = answer(image, screen, zbuf, normals, points)
    expect(isinstance(out, (tuple, list)) and len(out) == 2, "return (colors, visibility)")
    colors = expect_tensor(out[0], "the colours", (1, 6, 3)).double()
    vis = expect_tensor(out[1], "the visibility", (1, 6)).double()
    expect(set(vis.flatten().tolist()) <= {0.0, 1.0}, "the visibility is a 0/1 flag per vertex")
    rules = ["a vertex in front of everything, facing the camera", "a vertex behind the surface the z-buffer holds there",
             "a vertex projecting outside the image", "a vertex on the background (z-buffer -1: nothing covers it)",
             "a back-facing vertex (n . (c - p) < 0)", "a vertex just behind the surface, within the depth tolerance"]
    expected = [1, 0, 0, 0, 0, 1]
    for i, (rule, e) in enumerate(zip(rules, expected)):
        expect(vis[0, i] == e, f"{rule} should be {'visible' if e else 'hidden'}")
    expect(bool((colors[vis == 0] == 0).all()), "the colour of a hidden vertex should be zero (the Refiner reads zero there)")
    expect_close(colors[0, 0], sample_image(image, screen[..., :2])[0, 0], "the colour of the visible vertex "
                 "(bilinear, pixel centres at j + 0.5: use facelib.render.sample_image)")
    # A real face turned to the side: the nose hides part of the far cheek.
    model = load_open_model(level=0, verbose=False)
    renderer = FaceRenderer.for_model(model, 64)
    with torch.no_grad():
        r = renderer.render(model.mean_shape[None], model.mean_tex[None], torch.tensor([[0.1, 0.8, 0.0]]))
    photo = torch.rand(1, 64, 64, 3, generator=torch.Generator().manual_seed(3))
    c, v = answer(photo, r.screen, r.depth, r.normals, r.points, renderer.camera.distance)
    truth = vertex_visibility(r.screen, r.depth, r.normals, r.points, renderer.camera.distance)
    agree = float((expect_tensor(v, "the visibility on a face", truth.shape).float() == truth).float().mean())
    expect(agree > 0.97, f"on a turned face your visibility agrees with facelib's at only {agree:.1%} of the vertices: "
                         "test the depth at the covered pixels around the projection (floor(x - 0.5) and the next one, the same in y)")


vertex_colors_exercise = Exercise(
    "Exercise 3.4: T_p, the photo at the visible vertices", vertex_colors, _test_vertex_colors,
    "inside = 0 <= x < W and 0 <= y < H; facing: (normals * (c - points)).sum(-1) > 0 with c = (0, 0, distance); depth test: "
    "gather the z-buffer at the pixels around (x, y), keep the covered ones (z > 0), pass when depth <= z + tolerance * depth. "
    "Colours: sample_image(image, screen[..., :2]) * visibility.",
)
