"""A CNN cell classifier with the weak-supervision trainer (issue 20, item 1): the same rounds,
image head on its pooled cell features, refit, outputs and prediction as the descriptors
backbone, through one code path (:mod:`hpaseg.classification.cell_trainer`)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from hpaseg import io
from hpaseg.classification import (
    CellClassifierPredictor,
    ClassifyConfig,
    CropNet,
    bag_probabilities,
    build_classifier,
    feature_bags,
    fit_image_head,
    image_head_probabilities,
    load_classifier,
    make_bag,
    normalization,
    train_bags,
    train_classifier,
)
from hpaseg.classification.cell_trainer import batches, split_bags
from hpaseg.classification.models import _turn
from hpaseg.errors import InputError

A = 0  # Nucleoplasm


def _config(**changes) -> ClassifyConfig:
    base = ClassifyConfig(
        level="cell",
        backbone="resnet18",
        crop_size=32,
        epochs=1,
        lr=1e-3,
        batch_size=32,
        supervision="refined",
        refine_rounds=1,
        image_epochs=3,
        workers=0,
    )
    return dataclasses.replace(base, **changes)


def test_turns_are_the_eight_symmetries_of_the_square_and_only_in_training():
    torch.manual_seed(0)
    x = torch.arange(2 * 3 * 3, dtype=torch.float32).view(1, 2, 3, 3).repeat(64, 1, 1, 1)
    turned = _turn(x)
    symmetries = [torch.rot90(x[0], k, (1, 2)) for k in range(4)]
    symmetries += [s.flip(2) for s in symmetries]
    seen = {next(i for i, s in enumerate(symmetries) if torch.equal(t, s)) for t in turned}
    assert seen == set(range(8))  # each crop is one of them, and 64 draws show all 8
    net = CropNet(build_classifier("resnet18"), *normalization("resnet18")).eval()
    crops = torch.randint(0, 255, (3, 32, 32, 4), dtype=torch.uint8)
    assert torch.equal(net(crops), net(crops))  # eval: no turn, deterministic
    assert net.features(crops).shape == (3, net.num_features)


def test_a_step_holds_whole_images_up_to_the_cell_budget():
    bags = [
        make_bag(str(i), np.arange(n), np.zeros((n, 4, 4, 4), np.uint8), [(A,)] * n) for i, n in enumerate((5, 40, 3))
    ]
    assert [b.tolist() for b in batches(np.arange(3), bags, 32, by_cells=True)] == [[0], [1], [2]]
    assert bags[0].x.dtype == np.uint8  # crops stay uint8 (a quarter of the memory of float32)


def _crop_bags(seed: int, n_images: int = 24) -> list:
    """Images labelled A, every third Negative (no green); in every other image labelled A,
    cells 5-7 show no green (they lack A)."""
    rng = np.random.default_rng(seed)
    bags = []
    for i in range(n_images):
        crops = rng.integers(0, 40, (8, 32, 32, 4)).astype(np.uint8)
        labels = (18,) if i % 3 == 2 else (A,)
        carries = np.arange(8) < (0 if labels == (18,) else 5 if i % 2 == 0 else 8)
        crops[carries, 8:24, 8:24, 1] = 220  # green in the cell's middle
        bags.append(make_bag(f"img{i}", np.arange(1, 9), crops, [labels] * 8))
    return bags


def _lacking(bag) -> bool:
    return bag.image_labels == (A,) and int(bag.image_id[3:]) % 2 == 0


def test_a_cnn_ranks_the_cells_that_show_the_label_above_those_that_do_not():
    bags = _crop_bags(0)
    model = train_bags(_config(epochs=4, refine_rounds=1, batch_size=48), bags)
    assert isinstance(model, CropNet) and not model.training
    for bag, p in zip(bags, bag_probabilities(model, bags)):
        if _lacking(bag):
            assert p[:5, A].min() > p[5:, A].max(), (bag.image_id, p[:, A].round(2).tolist())
            assert p[5:, 18].min() > p[:5, 18].max(), (bag.image_id, p[:, 18].round(2).tolist())
    assert any(b.negative_known for b in bags if b.image_labels == (A,))  # targets were refined


def test_the_image_head_of_a_cnn_reads_its_pooled_cell_features():
    model = CropNet(build_classifier("resnet18"), *normalization("resnet18")).eval()
    bags = _crop_bags(1, 6)
    features = feature_bags(model, bags)
    assert features[0].x.shape == (8, model.num_features) and features[0].x.dtype == np.float32
    assert features[0].image_id == bags[0].image_id and bags[0].x.ndim == 4  # the crops are left as they were
    head = fit_image_head(_config(image_epochs=2), features)
    assert len(image_head_probabilities(head, features)) == 6
    with pytest.raises(ValueError, match="feature_bags"):
        fit_image_head(_config(image_epochs=2), bags)


@pytest.fixture(scope="module")
def cnn_run(tiny_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("cnn") / "run"
    cfg = _config(
        dataset=str(tiny_dataset["dataset"]),
        data=str(tiny_dataset["train"]),
        masks=str(tiny_dataset["masks"]),
        out=str(out),
    )
    return cfg, train_classifier(cfg, progress=False)


def test_a_cnn_run_has_the_rounds_image_head_refit_and_files_of_a_descriptors_run(cnn_run):
    cfg, result = cnn_run
    out = Path(cfg.out)
    for name in ("round0.pth", "round1.pth", "image_head.pth", "refit_round1.pth", "refit_image_head.pth"):
        assert (out / name).is_file(), name
    assert result["backbone"] == "resnet18" and result["rounds"] == 2 and result["input_size"] == 32
    assert result["final_model_trained_on"] == "train+val" and "image_macro_ap" in result
    state = torch.load(out / "model_final.pth", weights_only=False)
    assert state["net_kind"] == "crop_net" and state["image_model"] is not None and state["finished"]
    probs = io.read_cell_probabilities_csv(out / io.CELL_PROBABILITIES_CSV)
    labels = io.read_cell_labels_csv(out / "refined_labels.csv")
    assert {i: set(c) for i, c in probs.items()} == {i: set(c) for i, c in labels.items()}
    # the loaded run predicts what the run wrote for its training cells (cached crops = prediction crops)
    loaded = load_classifier(out, level="cell")
    assert isinstance(loaded.model, CropNet) and loaded.image_model is not None
    some = split_bags(cfg, progress=False)[0][0]
    image = io.read_rgby(cfg.data, some.image_id)
    cells = io.read_mask(io.mask_paths(cfg.masks, some.image_id)[0])
    p, q, ids = loaded.cell_and_image_probabilities(image, cells)
    rows = [list(ids).index(c) for c in some.cells]
    assert np.allclose([probs[some.image_id][int(c)] for c in some.cells], p[rows], atol=1e-4)
    assert q.shape == (19,) and ((q >= 0) & (q <= 1)).all()
    [(_, scores)] = CellClassifierPredictor(loaded)([image], [cells])
    assert set(scores) == set(ids.tolist()) and all(len(pairs) == 19 for pairs in scores.values())


def test_a_cnn_run_resumes_and_refuses_other_settings(cnn_run):
    cfg, first = cnn_run
    again = train_classifier(cfg, resume=True, progress=False)
    assert again["train_seconds"] == pytest.approx(first["train_seconds"])
    with pytest.raises(InputError, match="crop_size 32 \\(now 48\\)"):
        train_classifier(dataclasses.replace(cfg, crop_size=48), resume=True, progress=False)


def test_a_cnn_on_propagated_labels_stays_with_the_study_trainer(tiny_dataset, tmp_path):
    cfg = _config(
        dataset=str(tiny_dataset["dataset"]),
        data=str(tiny_dataset["train"]),
        masks=str(tiny_dataset["masks"]),
        out=str(tmp_path / "run"),
        supervision="propagated",
        loss="focal",
    )
    result = train_classifier(cfg, progress=False)
    assert result["loss"] == "focal" and not (tmp_path / "run" / "round0.pth").exists()
    assert load_classifier(cfg.out, level="cell").image_model is None


def test_a_resumed_cnn_run_takes_its_weights_from_its_checkpoint_not_the_pretrained_file(tiny_dataset, tmp_path):
    """The pretrained file is read to start a round, not to resume one: an offline node
    whose pretrained file (or download) is gone still resumes."""
    import timm

    weights = tmp_path / "resnet18.pth"
    torch.save(timm.create_model("resnet18", pretrained=False).state_dict(), weights)
    cfg = _config(
        dataset=str(tiny_dataset["dataset"]),
        data=str(tiny_dataset["train"]),
        masks=str(tiny_dataset["masks"]),
        out=str(tmp_path / "run"),
        pretrained=str(weights),
        refine_rounds=0,
        image_epochs=0,
        refit=False,
    )
    from hpaseg.classification.cell_trainer import _new_model

    start = _new_model(cfg, [])  # a round starts from the file's weights
    saved = torch.load(weights, weights_only=True)
    assert torch.equal(start.classifier.backbone.layer1[0].conv1.weight, saved["layer1.0.conv1.weight"])
    first = train_classifier(cfg, progress=False)
    weights.unlink()
    again = train_classifier(cfg, resume=True, progress=False)
    assert again["train_seconds"] == pytest.approx(first["train_seconds"])
