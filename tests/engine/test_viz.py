import numpy as np

from asymformer import viz


def test_charts_render_and_save(tmp_path):
    line = viz.line_chart({"loss": ([0, 1, 2], [2.0, 1.0, float("nan")]), "b": ([0, 2], [0.5, 0.7])}, "t", "x", "y")
    bar = viz.bar_chart(["a", "b"], [0.25, None], "iou", colors=[[255, 0, 0], [0, 255, 0]])
    heat = viz.heatmap(np.array([[5, 0], [1, 3]]), labels=["a", "b"], title="cm")
    path = viz.save_image(viz.stack([line, bar, heat]), tmp_path / "x.png")
    img = np.asarray(viz.Image.open(path))
    assert img.shape[0] == line.height + bar.height + heat.height + 16
    # The 0.25 bar is red and about a quarter of the bar area wide.
    red = (np.asarray(bar)[..., 0] > 200) & (np.asarray(bar)[..., 1] < 50)
    cols = np.where(red.any(0))[0]
    assert 0.2 < (cols.max() - cols.min()) / (bar.width - 210) < 0.3
    # Diagonal of the row-normalised heatmap is darker than the off-diagonal zero.
    h = np.asarray(heat).astype(int).sum(-1)
    assert h.min() < h.max()
