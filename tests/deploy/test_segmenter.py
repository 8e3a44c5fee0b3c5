import numpy as np
import pytest
import torch
from PIL import Image

from asymformer.data.transforms import normalize
from asymformer.deploy import Segmenter


def test_numpy_pil_tensor_inputs_agree_at_odd_size(small_model, make_frame):
    seg = Segmenter(small_model, device="cpu")
    rgb, depth = make_frame(45, 71)
    a = seg(rgb, depth, return_logits=True)
    assert a.labels.shape == (45, 71) and a.labels.dtype == np.int64
    assert a.confidence.shape == (45, 71) and ((a.confidence > 0.2 - 1e-6) & (a.confidence <= 1)).all()
    assert a.logits.shape == (5, 45, 71)
    # PIL images (16-bit depth as mode I) and CHW tensors in float metres give the same answer.
    b = seg(Image.fromarray(rgb), Image.fromarray(depth.astype(np.int32)))
    c = seg(torch.from_numpy(rgb).permute(2, 0, 1), torch.from_numpy(depth.astype(np.float32) / 1000))
    assert isinstance(c.labels, torch.Tensor) and c.labels.shape == (45, 71)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.labels, c.labels.numpy())
    # Labels are the argmax of the eager model on the data package's normalisation.
    r, d = normalize(rgb, depth.astype(np.float32) / 1000, "nyuv2_official")
    with torch.no_grad():
        ref = small_model(r[None], d[None])[0]
    assert (ref.argmax(0).numpy() == a.labels).mean() > 0.999
    assert np.abs(ref.numpy() - a.logits).max() < 1e-4


def test_batch_and_checkpoint_path(checkpoint, make_frame):
    seg = Segmenter(str(checkpoint), device="cpu")
    assert seg.class_names == [f"c{i}" for i in range(5)]
    frames = [make_frame(37, 50, seed=s) for s in range(2)]
    out = seg(np.stack([f[0] for f in frames]), np.stack([f[1] for f in frames]), return_attention=True)
    assert out.labels.shape == (2, 37, 50) and out.confidence.shape == (2, 37, 50)
    assert len(out.attention) == 3 and all(m.shape[0] == 2 for m in out.attention)
    single = seg(*frames[1])
    np.testing.assert_array_equal(single.labels, out.labels[1])


def test_colours_come_from_the_model_file(small_model, tmp_path):
    """The checkpoint's recorded dataset colours draw its predictions; unusable ones are one clear error."""
    import asymformer
    from asymformer.viz import palette

    assert Segmenter(small_model, device="cpu").colors.tolist() == palette(5).tolist()  # nothing recorded
    names = [f"c{i}" for i in range(5)]
    colors = [[10 * i, 20, 30] for i in range(5)]
    asymformer.save_model(small_model, tmp_path / "a.safetensors",
                          info=small_model.info.replace(class_names=names, colors=colors))
    assert Segmenter(str(tmp_path / "a.safetensors"), device="cpu").colors.tolist() == colors
    with pytest.raises(ValueError, match=r"'colors' must be 5 \[r, g, b\] triples"):
        small_model.info.replace(colors=colors[:4])  # a file can't record colours that don't fit


def test_class_names_of_a_model_without_any_are_the_released_sets(small_model):
    """A fresh 40 / 37-class model is named like the released weights (NYUv2 / SUNRGBD); others stay unnamed."""
    import asymformer
    from asymformer.data.classes import NYU40_CLASSES, SUN37_CLASSES

    assert Segmenter(small_model, device="cpu").class_names is None  # 5 classes, none recorded
    for k, names in ((40, NYU40_CLASSES), (37, SUN37_CLASSES)):
        model = asymformer.create_model("asymformer_b0_a", num_classes=k)
        assert model.info.class_names is None
        assert Segmenter(model, device="cpu").class_names == list(names)


def test_resize_option_runs_at_size_and_returns_frame_size(small_model, make_frame):
    """size=(64, 96): the frame goes through prepare_frame at 64×96, and the logits come back
    bilinearly (align_corners=False) at the frame's 30×41 before the argmax."""
    from asymformer.data.transforms import prepare_frame

    seg = Segmenter(small_model, device="cpu", size=(64, 96))
    rgb, depth = make_frame(30, 41)
    out = seg(rgb, depth, return_logits=True)
    r, d = prepare_frame(rgb, depth.astype(np.float32) / 1000, (64, 96), "nyuv2_official")
    with torch.no_grad():
        ref = torch.nn.functional.interpolate(small_model(r[None], d[None]), (30, 41), mode="bilinear",
                                              align_corners=False)[0]
    assert out.labels.shape == out.confidence.shape == (30, 41) and out.logits.shape == (5, 30, 41)
    assert np.abs(out.logits - ref.numpy()).max() < 1e-4  # folded BatchNorms: float rounding only
    assert (out.labels == ref.argmax(0).numpy()).mean() > 0.999
    np.testing.assert_allclose(out.confidence, torch.softmax(ref, 0).max(0).values.numpy(), atol=1e-4)


def test_bad_inputs_raise_clear_errors(small_model, tmp_path, make_frame):
    seg = Segmenter(small_model, device="cpu")
    rgb, depth = make_frame(40, 40)
    with pytest.raises(ValueError, match="depth_unit"):
        seg(rgb, depth.astype(np.uint8))  # 8-bit depth: unit unknown
    with pytest.raises(ValueError, match="depth_unit=0.001"):
        seg(rgb, depth.astype(np.float32))  # millimetres stored as floats
    with pytest.raises(ValueError, match=r"float values up to .* expected colour in 0\.\.1 or 0\.\.255"):
        seg(rgb.astype(np.float32) * 2 + 1, depth)  # float colour beyond 0..255
    with pytest.raises(ValueError, match="differ"):
        seg(rgb, depth[:30])
    with pytest.raises(ValueError, match="smaller than 32"):
        seg(*make_frame(20, 40))
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        Segmenter(tmp_path / "missing.pth")
    with pytest.raises(ValueError, match="normalization"):
        Segmenter(small_model, device="cpu", normalization="nope")


def test_tensor_frames_follow_the_same_resize_rules(small_model, make_frame):
    """GPU-loop tensors use the torch port of prepare_frame: same rules, near-identical labels."""
    from asymformer.data.transforms import resize_depth
    from asymformer.deploy.inputs import resize_on_device

    seg = Segmenter(small_model, device="cpu", size=(64, 96))
    rgb, depth = make_frame(90, 130, seed=4)
    a = seg(rgb, depth).labels
    b = seg(torch.from_numpy(rgb).permute(2, 0, 1), torch.from_numpy(depth.astype(np.int32))).labels.numpy()
    assert a.shape == b.shape == (90, 130)
    assert (a == b).mean() > 0.97  # PIL rounds the resized rgb to 8 bits, torch keeps floats
    # depth with a hole: neither path blends valid depth with the invalid 0
    d = np.zeros((30, 40), np.float32)
    d[:, 20:] = 2.0
    host = resize_depth(d, (17, 23))
    dev = resize_on_device(torch.zeros(1, 3, 30, 40), torch.from_numpy(d)[None, None], (17, 23))[1][0, 0].numpy()
    for out in (host, dev):
        assert set(np.unique(np.round(out, 5))) == {0.0, 2.0}
    assert ((host > 0) == (dev > 0)).mean() > 0.95  # may differ only where the valid weight is ~0.5


def test_segmenter_takes_names_colours_and_normalisation_from_the_model_info(small_model, make_frame):
    import copy

    model = copy.deepcopy(small_model)
    colors = [[10 * i, 20, 30] for i in range(5)]
    model.info = model.info.replace(class_names=list("abcde"), colors=colors, normalization="imagenet")
    seg = Segmenter(model, device="cpu")
    assert seg.class_names == list("abcde") and seg.colors.tolist() == colors and seg.num_classes == 5
    assert seg.normalization["name"] == "imagenet" and seg._norm["rgb_std"] == [0.229, 0.224, 0.225]
    rgb, depth = make_frame(40, 48)
    r, d = normalize(rgb, depth.astype(np.float32) / 1000, "imagenet")
    with torch.no_grad():
        ref = model(r[None], d[None])[0]
    np.testing.assert_allclose(seg(rgb, depth, return_logits=True).logits, ref.numpy(), atol=1e-4)
    assert Segmenter(model, device="cpu", normalization="dformer").normalization == "dformer"  # the argument wins
    with pytest.raises(ValueError, match="says nothing about its classes"):
        Segmenter(torch.nn.Conv2d(4, 3, 1), device="cpu")
