import numpy as np
import torch

from asymformer.engine import TrainConfig, train, train_step


def test_short_training_on_synthetic_rooms_is_far_above_chance(tmp_path):
    size = (64, 96)
    cfg = TrainConfig(data="synthetic:32:8", out=str(tmp_path / "run"), model="asymformer_b0_a", epochs=6,
                      batch_size=8, lr=2e-3, crop_size=size, base_size=size, eval_size=size, scale_range=(1.0, 1.5),
                      warmup_epochs=0.5, val_every=6, workers=0, progress=False, tensorboard=False)
    m = train(cfg)["last_metrics"]  # 24 steps
    counts = np.zeros(10)
    from asymformer.engine.builders import open_split

    val = open_split(cfg.data, "test", seed=0, size=size)
    for i in range(len(val)):
        lab = val[i]["label"]
        counts += np.bincount(lab[lab != 255].ravel(), minlength=10)[:10]
    majority = counts.max() / counts.sum()
    chance_miou = majority / (counts > 0).sum()  # always predicting the most frequent class
    assert m["pixel_acc"] > majority + 0.1, (m["pixel_acc"], majority)
    assert m["miou"] > 3 * chance_miou, (m["miou"], chance_miou)


class _Spy(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(4, 3, 1)
        self.seen = None

    def forward(self, rgb, depth):
        self.seen = depth.clone()
        return self.conv(torch.cat([rgb, depth], 1))


def test_zero_depth_feeds_zeros_and_step_updates_weights():
    spy = _Spy()
    opt = torch.optim.AdamW(spy.parameters(), lr=0.1)
    before = spy.conv.weight.detach().clone()
    batch = {"rgb": torch.randn(2, 3, 8, 8), "depth": torch.randn(2, 1, 8, 8) + 5,
             "label": torch.randint(0, 3, (2, 8, 8))}
    batch["label"][0, 0, 0] = 255
    loss = train_step(spy, batch, opt, torch.device("cpu"), zero_depth=True, grad_clip=0.5)
    assert torch.count_nonzero(spy.seen) == 0 and loss > 0
    assert not torch.equal(before, spy.conv.weight)
    assert float(torch.cat([p.grad.reshape(-1) for p in spy.parameters()]).norm()) <= 0.5 + 1e-6
    train_step(spy, batch, opt, torch.device("cpu"))
    assert torch.equal(spy.seen, batch["depth"])
