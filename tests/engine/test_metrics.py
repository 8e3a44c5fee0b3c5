import numpy as np
import pytest
import torch

from asymformer.engine.metrics import ConfusionMatrix, metrics_from_confusion


def brute_force(preds, labels, k, ignore=255):
    """Per-class IoU / accuracy by explicit pixel loops over the whole set."""
    inter, union, gt_count = [0] * k, [0] * k, [0] * k
    correct = total = 0
    for p_img, l_img in zip(preds, labels):
        for p, t in zip(p_img.ravel().tolist(), l_img.ravel().tolist()):
            if t == ignore:
                continue
            total += 1
            correct += p == t
            gt_count[t] += 1
            for c in range(k):
                if p == c and t == c:
                    inter[c] += 1
                if p == c or t == c:
                    union[c] += 1
    ious = [inter[c] / union[c] for c in range(k) if union[c] > 0]
    accs = [inter[c] / gt_count[c] for c in range(k) if gt_count[c] > 0]
    return sum(ious) / len(ious), correct / total, sum(accs) / len(accs), inter, union


def test_confusion_matrix_matches_brute_force_loop():
    rng = np.random.default_rng(0)
    k = 6
    cm = ConfusionMatrix(k)
    preds, labels = [], []
    for _ in range(4):  # several "images": accumulated, not averaged per image
        p = rng.integers(0, k, (2, 9, 11))
        t = rng.integers(0, k, (2, 9, 11))
        t[rng.random(t.shape) < 0.2] = 255
        t[t == 5] = 255  # class 5 never in the labels: only false positives
        preds.append(p)
        labels.append(t)
        cm.update(torch.from_numpy(p), torch.from_numpy(t))
    miou, pacc, macc, inter, union = brute_force(preds, labels, k)
    m = cm.compute()
    assert m["miou"] == pytest.approx(miou, abs=1e-12)
    assert m["pixel_acc"] == pytest.approx(pacc, abs=1e-12)
    assert m["mean_acc"] == pytest.approx(macc, abs=1e-12)
    assert m["per_class_iou"][5] == 0.0 and m["per_class_acc"][5] is None
    assert m["per_class_iou"] == pytest.approx([i / u for i, u in zip(inter, union)])
    assert m["pixels"] == sum((t != 255).sum() for t in labels)


def test_perfect_prediction_and_absent_class():
    t = torch.tensor([[0, 1], [1, 255]])
    cm = ConfusionMatrix(3)
    cm.update(t.clone().clamp(max=2), t)
    m = cm.compute()
    assert m["miou"] == 1.0 and m["pixel_acc"] == 1.0
    assert m["per_class_iou"][2] is None  # never seen: excluded from the mean


def test_shape_mismatch_is_a_clear_error():
    with pytest.raises(ValueError, match="shape"):
        ConfusionMatrix(3).update(torch.zeros(2, 2), torch.zeros(2, 3))


def test_metrics_from_matrix_directly():
    mat = np.array([[3, 1], [0, 4]])
    m = metrics_from_confusion(mat)
    assert m["per_class_iou"] == pytest.approx([3 / 4, 4 / 5])
    assert m["pixel_acc"] == pytest.approx(7 / 8)
