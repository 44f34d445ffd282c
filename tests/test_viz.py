import numpy as np
import pytest
import torch

from facelib.viz import image_grid, interact, mesh_figure, pipeline_figure, to_numpy_image


def test_image_grid_takes_batches_in_both_layouts_and_lists():
    fig = image_grid(torch.rand(5, 16, 16, 3), titles=list("abcde"))
    assert sum(ax.has_data() for ax in fig.axes) == 5
    fig = image_grid(torch.rand(3, 3, 16, 16))
    assert sum(ax.has_data() for ax in fig.axes) == 3
    fig = image_grid([np.zeros((8, 8), np.uint8), torch.ones(3, 8, 8)])
    assert sum(ax.has_data() for ax in fig.axes) == 2


def test_to_numpy_image_scales_uint8_and_moves_channels():
    out = to_numpy_image(torch.full((3, 4, 5), 255, dtype=torch.uint8))
    assert out.shape == (4, 5, 3) and out.max() == 1.0
    with pytest.raises(ValueError):
        to_numpy_image(np.zeros((2, 3, 4, 5)))


def test_mesh_figure_with_vertex_colours_and_scalars():
    v = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 1, 0]])
    f = torch.tensor([[0, 1, 2]])
    fig = mesh_figure(v, f, torch.rand(3, 3))
    assert len(fig.data[0].vertexcolor) == 3
    fig = mesh_figure(v, f, torch.rand(3))
    assert fig.data[0].intensity is not None
    with pytest.raises(ValueError, match="indices"):
        mesh_figure(v, torch.tensor([[0, 1, 3]]))


def test_interact_headless_calls_the_function_with_its_defaults(monkeypatch, capsys):
    monkeypatch.setenv("FACELIB_HEADLESS", "1")
    assert interact(lambda a=2, b=3: a * b, a=(0, 5), b=(0, 5)) == 6
    with pytest.raises(TypeError, match="default"):
        interact(lambda a: a, a=(0, 5))


def test_interact_in_a_live_kernel_builds_sliders(monkeypatch):
    monkeypatch.setenv("FACELIB_HEADLESS", "0")
    widget = interact(lambda a=2.0, b=1: a, b=(0, 5), a=(0.0, 5.0))
    values = {c.description: c.value for c in widget.children if hasattr(c, "description") and c.description}
    assert values["a"] == 2.0 and values["b"] == 1


def test_pipeline_figure_highlights_the_lessons_boxes():
    from facelib.viz.pipeline import STAGES

    def highlighted(lesson):
        fig = pipeline_figure(lesson)
        return [p.get_linewidth() > 1 for p in fig.axes[0].patches]

    assert highlighted(3) == [3 in stage.lessons for stage in STAGES]
    assert sum(highlighted(5)) == 3 and not any(highlighted(0))
    labels = " ".join(stage.label for stage in STAGES)
    assert "identity network" in labels and "T_p" in labels  # the two paths from the photo into the GCNs


def test_show_photo_displays_a_small_jpeg(tmp_path):
    import numpy as np
    from PIL import Image

    from facelib.viz import show_photo

    path = tmp_path / "big.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (600, 1200, 3), dtype=np.uint8)).save(path)
    shown = show_photo(path, max_side=300)
    assert shown.size == (300, 150)
    with pytest.raises(FileNotFoundError, match="no such image"):
        show_photo(tmp_path / "missing.png")


def test_network_figure_draws_a_panel_per_branch_with_level_labels():
    import matplotlib.pyplot as plt

    from facelib.viz import network_figure

    layers = [("Refiner", "encoder", 0, (1, 40, 8)), ("Refiner", "encoder", 1, (1, 10, 8)), ("Refiner", "decoder", 0, (1, 40, 8)),
              ("Decoder", "fc", 1, (1, 10, 4)), ("Decoder", "decoder", 0, (1, 40, 3)), ("CombineNet", "conv", 0, (1, 40, 3))]
    fig = network_figure(layers, [40, 10], inputs={"Refiner": "reads x"})
    assert [ax.get_title() for ax in fig.axes] == ["Refiner", "Decoder", "CombineNet"]
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert "(1, 40, 8)" in texts and "reads x" in texts
    assert "level 1\n10 vertices" in [t.get_text() for t in fig.axes[0].get_yticklabels()]
    plt.close(fig)
    with pytest.raises(ValueError, match="no layers"):
        network_figure([], [40])


def test_charts_draw_what_they_are_given():
    import matplotlib.pyplot as plt

    from facelib.viz import change_bars, distance_bars, stacked_terms

    fig = distance_bars({"same": 0.3, "other": 0.8}, 0.6, "pairs")
    bars = fig.axes[0].patches
    assert [round(b.get_width(), 6) for b in bars] == [0.3, 0.8]
    assert bars[0].get_facecolor() != bars[1].get_facecolor()  # under and over the threshold
    plt.close(fig)

    rows = {"step 0": {"a": 0.5, "b": -0.2}, "step 1": {"a": 0.1, "b": 0.3}}
    fig = stacked_terms(rows, {"step 0": 0.3, "step 1": 0.4}, "contribution")
    negative = [b for b in fig.axes[0].patches if b.get_x() < 0]
    assert len(negative) == 1 and abs(negative[0].get_width() - 0.2) < 1e-9  # drawn left of 0, its length |value|
    plt.close(fig)
    with pytest.raises(ValueError, match="add up"):
        stacked_terms(rows, {"step 0": 0.7, "step 1": 0.4}, "contribution")

    fig = change_bars({"run": {"x": -5.0, "y": 80.0}}, [("x", "X"), ("y", "Y")], "change")
    assert fig.axes[0].get_xlim() == (-40.0, 40.0)
    assert any(t.get_text() == "+80 %" for t in fig.axes[0].texts)  # a bar cut by the axis says its length
    plt.close(fig)
