"""matplotlib figures: content checked on the Figure objects (labels, ticks, values), and the files."""

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from asymformer import figures  # noqa: E402

NAMES = ["wall", "floor", "chair"]


def _texts(ax):
    return [t.get_text() for t in ax.texts]


def test_confusion_matrix_is_row_normalised_and_labelled():
    cm = np.array([[80, 15, 5], [10, 90, 0], [0, 0, 0]])  # chair: no pixels in the labels
    fig = figures.confusion_figure(cm, NAMES)
    ax, bar = fig.axes  # the matrix and its colour bar
    assert ax.get_xlabel() == "predicted class" and ax.get_ylabel() == "true class"
    assert [t.get_text() for t in ax.get_xticklabels()] == NAMES
    assert [t.get_text() for t in ax.get_yticklabels()] == NAMES
    shown = ax.images[0].get_array()
    np.testing.assert_allclose(shown[0], [0.8, 0.15, 0.05])
    np.testing.assert_allclose(shown.sum(axis=1), [1.0, 1.0, 0.0])  # an empty row stays 0, never NaN
    assert shown.min() >= 0.0 and shown.max() <= 1.0 and ax.images[0].get_clim() == (0.0, 1.0)
    assert "fraction" in bar.get_ylabel()
    assert sorted(_texts(ax)) == sorted(["0.80", "0.15", "0.05", "0.10", "0.90"])  # values where they fit


def test_many_classes_have_no_cell_numbers():
    fig = figures.confusion_figure(np.eye(30) * 5 + 1, [f"c{i}" for i in range(30)])
    assert _texts(fig.axes[0]) == [] and len(fig.axes[0].get_xticklabels()) == 30


def test_iou_bars_are_sorted_named_and_coloured():
    colors = np.array([[200, 0, 0], [0, 200, 0], [0, 0, 200]], np.uint8)
    fig = figures.iou_bars_figure(NAMES, [0.4, 0.9, None], colors, miou=0.65)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["floor", "wall", "chair"]  # best first, n/a last
    widths = [p.get_width() for p in ax.patches]
    assert widths == [0.9, 0.4, 0.0] and ax.get_xlim() == (0.0, 1.0) and ax.get_xlabel() == "IoU"
    np.testing.assert_allclose(ax.patches[0].get_facecolor()[:3], np.array([0, 200, 0]) / 255)
    assert "n/a" in _texts(ax) and "0.900" in _texts(ax)
    assert "mIoU 0.6500" in [t.get_text() for t in ax.get_legend().get_texts()]


def test_training_curves_mark_the_best_epoch():
    records = [{"kind": "train", "iteration": i, "loss": 2.0 / (i + 1), "lr": 1e-4 * (1 - i / 10)} for i in range(10)]
    records += [{"kind": "val", "epoch": e, "iteration": 5 * e, "miou": m} for e, m in ((1, 0.2), (2, 0.45), (3, 0.4))]
    fig = figures.curves_figure(records)
    loss, lr, miou = fig.axes
    assert loss.get_xlabel() == "iteration" and loss.get_ylabel() == "training loss"
    assert lr.get_ylabel() == "learning rate" and miou.get_xlabel() == "epoch"
    np.testing.assert_allclose(loss.lines[0].get_ydata(), [2.0 / (i + 1) for i in range(10)])
    assert list(miou.lines[0].get_ydata()) == [0.2, 0.45, 0.4]
    assert [t.get_text() for t in miou.get_legend().get_texts()] == ["best: epoch 2, mIoU 0.4500"]
    assert figures.curves_figure([{"kind": "other"}]) is None
    only_val = figures.curves_figure([r for r in records if r["kind"] == "val"])
    assert len(only_val.axes) == 1


@pytest.mark.parametrize("fmt, magic", [("png", b"\x89PNG"), ("pdf", b"%PDF"), ("svg", b"<?xml")])
def test_figures_save_in_each_format(tmp_path, fmt, magic):
    path = figures.save_figure(figures.confusion_figure(np.eye(2), ["a", "b"]), tmp_path / f"cm.{fmt}")
    assert path.read_bytes().startswith(magic)
    assert not list(tmp_path.glob(".*"))  # atomic: no temporary left
    with pytest.raises(ValueError, match="png, pdf, svg"):
        figures.save_figure(figures.confusion_figure(np.eye(2), ["a", "b"]), tmp_path / "cm.jpg")


def test_evaluate_reports_use_the_figures(tmp_path):
    from asymformer.engine.evaluate import write_reports

    results = {"miou": 0.5, "per_class_iou": [0.4, 0.6, None], "per_class_acc": [0.5, 0.7, None],
               "class_names": NAMES}
    paths = write_reports(results, np.array([[4, 1, 0], [1, 4, 0], [0, 0, 0]]), NAMES, None, tmp_path, "svg")
    assert paths["confusion"].name == "confusion_matrix.svg" and paths["bar"].name == "per_class_iou.svg"
    text = paths["confusion"].read_text()
    assert "predicted class" in text and "true class" in text and "chair" in text
