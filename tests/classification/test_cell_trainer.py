"""The weak-supervision trainer with the descriptor network: on constructed bags it learns
which cells carry their image's labels; runs write, resume and load (its CNN backbone:
test_cnn_cell_route.py)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from hpaseg.classification import (
    Bag,
    CellClassifierPredictor,
    ClassifyConfig,
    bag_probabilities,
    fit_image_head,
    image_head_probabilities,
    load_classifier,
    make_bag,
    train_bags,
    train_classifier,
)
from hpaseg.classification.cell_trainer import VALIDATED_MODEL, split_bags
from hpaseg.errors import InputError
from hpaseg.weak import ScoreRule, fuse_scores, propagated_targets

A, B = 0, 16  # Nucleoplasm, Cytosol; feature 0 shows A, feature 1 shows B


def _bags(seed: int = 0, n_images: int = 48) -> list[Bag]:
    """Images labelled A, B, A+B or Negative (no feature shown); in every other image with
    labels some cells lack its first label (nothing in its feature): their truth is
    Negative when that was the image's only label."""
    rng = np.random.default_rng(seed)
    bags = []
    for i in range(n_images):
        labels = [(A,), (B,), (A, B), (18,)][i % 4]
        n = 8
        x = rng.normal(0.0, 0.2, (n, 6)).astype(np.float32)
        carries = {k: np.ones(n, bool) for k in labels}
        if i % 2 == 0 and labels != (18,):
            carries[labels[0]] = np.arange(n) < 5  # cells 5-7 lack it
        for k in set(labels) - {18}:
            x[carries[k], 0 if k == A else 1] += 2.5
        bags.append(make_bag(f"img{i}", np.arange(1, n + 1), x, [labels] * n))  # propagated
    return bags


def _config(**changes) -> ClassifyConfig:
    base = ClassifyConfig(
        level="cell", backbone="descriptors", epochs=20, lr=1e-2, batch_size=4, hidden=32, supervision="refined"
    )
    return dataclasses.replace(base, **changes)


@pytest.mark.parametrize("supervision", ["refined", "mil", "propagated"])
def test_a_cell_that_expresses_nothing_in_an_image_labelled_A_ranks_highest_for_negative(supervision):
    """Kaggle convention: images labelled A (not A|18) although two of their cells show
    nothing; Negative labels 4 whole images only. Trained on these labels, the one cell of
    a new image labelled A that shows nothing ranks highest for Negative among its cells,
    by the model's own Negative (were a missing 18 read as "no cell is Negative", the 72
    such cells would outvote the 32 of the Negative images) and by the reported scores."""
    rng = np.random.default_rng(3)
    bags = []
    for i in range(40):
        labels = (18,) if i % 10 == 0 else (A,)
        x = rng.normal(0.0, 0.2, (8, 6)).astype(np.float32)
        if labels == (A,):
            x[2:, 0] += 2.5  # cells 1 and 2 show nothing
        bags.append(make_bag(f"img{i}", np.arange(1, 9), x, [labels] * 8))
    model = train_bags(_config(supervision=supervision), bags)
    x = rng.normal(0.0, 0.2, (8, 6)).astype(np.float32)
    x[1:, 0] += 2.5  # only cell 1 shows nothing
    new = make_bag("new", np.arange(1, 9), x, [(A,)] * 8)
    p = bag_probabilities(model, [new])[0]
    assert int(np.argmax(p[:, 18])) == 0, (supervision, p[:, 18].round(2).tolist())
    if (
        supervision != "refined"
    ):  # (refinement keeps A on such cells here: their p_A is within keep_fraction of the best)
        assert p[0, 18] > 0.5, (supervision, p[:, 18].round(2).tolist())
    s = fuse_scores(p, None, ScoreRule())
    assert int(np.argmax(s[:, 18])) == 0, supervision


@pytest.mark.parametrize("supervision", ["refined", "mil", "propagated"])
def test_a_cell_lacking_its_images_label_is_ranked_below_the_cells_that_have_it(supervision):
    bags = _bags()
    model = train_bags(_config(supervision=supervision), bags)
    for bag, p in zip(bags, bag_probabilities(model, bags)):
        if bag.image_labels == (A,) and int(bag.image_id[3:]) % 2 == 0:
            assert p[:5, A].min() > p[5:, A].max(), (supervision, bag.image_id)


def test_refinement_turns_cells_left_with_no_label_into_negative():
    bags = _bags()
    model = train_bags(_config(supervision="refined", refine_rounds=2), bags)
    lacking, carrying, p_lacking, p_carrying = [], [], [], []
    for bag, p in zip(bags, bag_probabilities(model, bags)):
        if bag.image_labels == (A,) and int(bag.image_id[3:]) % 2 == 0:
            lacking.append(bag.targets[5:])
            carrying.append(bag.targets[:5])
            p_lacking.append(p[5:, 18])
            p_carrying.append(p[:5, 18])
    lacking, carrying = np.concatenate(lacking), np.concatenate(carrying)
    assert lacking[:, 18].mean() >= 0.9 and lacking[:, A].mean() <= 0.1  # refined: Negative, not A
    assert carrying[:, A].all() and not carrying[:, 18].any()
    assert np.median(np.concatenate(p_lacking)) > 0.5 > np.concatenate(p_carrying).max()  # and learned


def test_propagated_and_mil_training_keep_the_dataset_targets():
    for supervision in ("propagated", "mil"):
        bags = _bags()
        train_bags(_config(supervision=supervision, epochs=2), bags)
        assert all((b.targets == propagated_targets(len(b.cells), b.image_labels)).all() for b in bags)


def test_training_is_deterministic():
    first = train_bags(_config(epochs=5), _bags())
    second = train_bags(_config(epochs=5), _bags())
    for a, b in zip(first.state_dict().values(), second.state_dict().values()):
        assert torch.equal(a, b)


def test_the_image_head_learns_which_images_hold_a_label():
    cfg = _config(image_epochs=40)
    head = fit_image_head(cfg, _bags())
    held_out = _bags(seed=1)
    q = np.stack(image_head_probabilities(head, held_out))
    for k in (A, B, 18):
        holds = np.array([k in b.image_labels for b in held_out])
        assert q[holds, k].min() > q[~holds, k].max(), k  # every image with k above every one without
    again = fit_image_head(cfg, _bags())
    assert all(torch.equal(a, b) for a, b in zip(head.state_dict().values(), again.state_dict().values()))
    assert fit_image_head(_config(image_epochs=0), _bags()) is None


def test_an_image_head_trained_only_on_mixed_bags_still_reads_single_images():
    """Every sample mixes 2-4 images: the head learns from the union of their labels
    (a wrong union, e.g. the first image's labels alone, would teach it that B's cells
    are A's) and still separates held-out single images."""
    cfg = _config(image_epochs=40, image_mix=1.0)
    head = fit_image_head(cfg, _bags())
    q = np.stack(image_head_probabilities(head, _bags(seed=1)))
    held_out = _bags(seed=1)
    for k in (A, B):
        holds = np.array([k in b.image_labels for b in held_out])
        assert q[holds, k].min() > q[~holds, k].max(), k
    unmixed = fit_image_head(dataclasses.replace(cfg, image_mix=0.0), _bags())
    assert not all(torch.equal(a, b) for a, b in zip(head.state_dict().values(), unmixed.state_dict().values()))


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"level": "image"}, "descriptors and weak supervision are cell-level"),
        (
            {"backbone": "efficientnet_b0", "crop_size": 16},
            "crop_size 16: backbone 'efficientnet_b0' needs inputs of at least 32 px",
        ),
        ({"keep_fraction": 0.0}, "keep_fraction 0.0"),
        ({"supervision": "magic"}, "supervision 'magic'"),
        ({"pooling": "attention"}, "pooling 'attention'"),
        ({"image_epochs": -1}, "image_epochs -1"),
        ({"image_mix": 1.5}, "image_mix 1.5"),
    ],
)
def test_unusable_settings_are_refused(changes, message, tiny_dataset):
    cfg = _config(
        dataset=str(tiny_dataset["dataset"]),
        data=str(tiny_dataset["train"]),
        masks=str(tiny_dataset["masks"]),
        out="x",
        **changes,
    )
    with pytest.raises(InputError, match=message):
        train_classifier(cfg, progress=False)


@pytest.fixture(scope="module")
def descriptor_run(tiny_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("desc") / "run"
    cfg = _config(
        dataset=str(tiny_dataset["dataset"]),
        data=str(tiny_dataset["train"]),
        masks=str(tiny_dataset["masks"]),
        out=str(out),
        epochs=3,
        workers=0,
    )
    return cfg, train_classifier(cfg, progress=False)


def test_a_run_writes_its_files_and_scores(descriptor_run):
    cfg, result = descriptor_run
    out = cfg.out
    names = (
        "config.yaml",
        "round0.pth",
        "round2.pth",
        "image_head.pth",
        "model_final.pth",
        "eval.json",
        "metrics.jsonl",
    )
    for name in names:
        assert (tiny := __import__("pathlib").Path(out) / name).is_file(), tiny
    assert result["rounds"] == 3 and result["supervision"] == "refined" and result["backbone"] == "descriptors"
    assert result["n_train"] > 0 and result["n_val_images"] >= 1 and "image_macro_ap" in result
    # the final model is pass 1's, trained on train + val; the validation scores are pass 0's
    assert result["final_model_trained_on"] == "train+val"
    final, refit, validated = (
        torch.load(f"{out}/{n}.pth", weights_only=False) for n in ("model_final", "refit_image_head", "image_head")
    )
    for key in ("model", "image_model"):
        assert all(torch.equal(a, b) for a, b in zip(final[key].values(), refit[key].values()))
        assert not all(torch.equal(a, b) for a, b in zip(final[key].values(), validated[key].values()))
    # the teacher's file: the final model's probabilities of every train and val cell
    from hpaseg import io

    probs = io.read_cell_probabilities_csv(f"{out}/{io.CELL_PROBABILITIES_CSV}")
    labels = io.read_cell_labels_csv(f"{out}/refined_labels.csv")
    assert {i: set(c) for i, c in probs.items()} == {i: set(c) for i, c in labels.items()}
    loaded = load_classifier(out, level="cell")
    some = split_bags(cfg, progress=False)[0][0]
    [p] = bag_probabilities(loaded.model, [some])
    assert np.allclose([probs[some.image_id][int(c)] for c in some.cells], p, atol=1e-5)


def test_without_refit_the_final_model_is_the_validated_one(tiny_dataset, tmp_path):
    cfg = _config(
        dataset=str(tiny_dataset["dataset"]),
        data=str(tiny_dataset["train"]),
        masks=str(tiny_dataset["masks"]),
        out=str(tmp_path / "run"),
        epochs=2,
        refine_rounds=0,
        image_epochs=0,
        refit=False,
        workers=0,
    )
    result = train_classifier(cfg, progress=False)
    assert result["final_model_trained_on"] == "train"
    assert sorted(p.name for p in (tmp_path / "run").glob("*.pth")) == ["model_final.pth", "round0.pth"]
    loaded = load_classifier(cfg.out, level="cell")
    assert loaded.image_model is None
    # the saved model is the validated one: the thresholds tuned for it on val are kept with it
    assert result["thresholds_of"] == f"{VALIDATED_MODEL}, the saved model"
    assert torch.load(f"{cfg.out}/model_final.pth", weights_only=False)["thresholds"] == result["thresholds"]
    assert loaded.thresholds is not None and np.allclose(loaded.thresholds, result["thresholds"])


def test_a_refit_run_saves_no_thresholds_tuned_on_data_its_model_trained_on(descriptor_run, tiny_dataset):
    """Pass 1 (the saved model) trains on train + val: the thresholds pass 0's model was tuned
    to on val are not saved with it; eval.json keeps them, saying whose they are."""
    from hpaseg import io

    cfg, result = descriptor_run
    assert cfg.refit and result["final_model_trained_on"] == "train+val"
    state = torch.load(f"{cfg.out}/model_final.pth", weights_only=False)
    assert state["finished"] is True and state["thresholds"] is None
    assert state["validation"]["thresholds_of"] == VALIDATED_MODEL  # the record of pass 0, marked as such
    saved = io.read_json(f"{cfg.out}/eval.json")
    assert len(saved["thresholds"]) == 19 and saved["thresholds_of"] == VALIDATED_MODEL
    loaded = load_classifier(cfg.out, level="cell")
    assert loaded.thresholds is None
    image_id = io.list_image_ids(tiny_dataset["test"])[0]
    image = io.read_rgby(tiny_dataset["test"], image_id)
    cells = io.read_mask(io.mask_paths(tiny_dataset["masks"], image_id)[0])
    [(_, scores)] = CellClassifierPredictor(loaded)([image], [cells])
    assert scores and all(len(pairs) == 19 for pairs in scores.values())


def test_only_the_final_checkpoint_of_a_finished_run_loads(descriptor_run, tmp_path):
    cfg, _ = descriptor_run
    with pytest.raises(InputError, match="not the final checkpoint of a finished run"):
        load_classifier(f"{cfg.out}/refit_image_head.pth", level="cell")
    # A final checkpoint of an earlier hpaseg has no "finished" but its thresholds: it loads.
    state = torch.load(f"{cfg.out}/model_final.pth", weights_only=False)
    del state["finished"]
    state["thresholds"] = [0.5] * 19
    torch.save(state, tmp_path / "old.pth")
    assert load_classifier(tmp_path / "old.pth", level="cell").thresholds.tolist() == [0.5] * 19
    state["thresholds"] = None
    torch.save(state, tmp_path / "old.pth")
    with pytest.raises(InputError, match="not the final checkpoint"):
        load_classifier(tmp_path / "old.pth", level="cell")


def test_resume_skips_finished_rounds(descriptor_run):
    cfg, first = descriptor_run
    again = train_classifier(cfg, resume=True, progress=False)
    assert again["train_seconds"] == pytest.approx(first["train_seconds"])
    with pytest.raises(InputError, match="other settings"):
        train_classifier(dataclasses.replace(cfg, hidden=8), resume=True, progress=False)


def test_a_run_of_an_earlier_hpaseg_is_not_resumed_with_settings_it_did_not_have(descriptor_run, tmp_path):
    """A checkpoint whose config lacks image_mix was trained without bag mixing: resuming
    it with the default (mixing) would mix two trainings, so it is refused."""
    import shutil

    cfg, _ = descriptor_run
    old = tmp_path / "old"
    shutil.copytree(cfg.out, old)
    last = old / (old / "last_checkpoint").read_text().strip()
    state = torch.load(last, weights_only=False)
    del state["config"]["image_mix"]
    torch.save(state, last)
    with pytest.raises(InputError, match=r"image_mix 0\.0 \(now 0\.75\)"):
        train_classifier(dataclasses.replace(cfg, out=str(old)), resume=True, progress=False)
    again = train_classifier(dataclasses.replace(cfg, out=str(old), image_mix=0.0), resume=True, progress=False)
    assert again["final_model_trained_on"] == "train+val"


def test_the_run_loads_and_scores_the_cells_of_an_image(descriptor_run, tiny_dataset):
    from hpaseg import io

    cfg, _ = descriptor_run
    loaded = load_classifier(cfg.out, level="cell")
    assert loaded.backbone == "descriptors"
    image_id = io.list_image_ids(tiny_dataset["test"])[0]
    image = io.read_rgby(tiny_dataset["test"], image_id)
    cells = io.read_mask(io.mask_paths(tiny_dataset["masks"], image_id)[0])
    p, ids = loaded.cell_probabilities(image, cells)
    assert p.shape == (len(ids), 19) and ((p >= 0) & (p <= 1)).all()
    [(label_image, scores)] = CellClassifierPredictor(loaded)([image], [cells])
    assert set(scores) == set(ids.tolist())
    assert all(len(pairs) == 19 for pairs in scores.values())  # every class ranked
    # the image head scores the image, and the route mixes it in (weight 0: pooled cells alone)
    p2, q, ids2 = loaded.cell_and_image_probabilities(image, cells)
    assert np.array_equal(p2, p) and np.array_equal(ids2, ids) and q.shape == (19,) and ((q >= 0) & (q <= 1)).all()
    [(_, unmixed)] = CellClassifierPredictor(loaded, score_rule=ScoreRule(image_model_weight=0.0))([image], [cells])
    [(_, headless)] = CellClassifierPredictor(dataclasses.replace(loaded, image_model=None))([image], [cells])
    assert unmixed == headless != scores


def test_the_image_head_scores_many_images_in_one_pass_as_it_scores_each():
    from hpaseg.weak import ImageHead

    torch.manual_seed(0)
    head = ImageHead(6, hidden=16).eval()
    bags = [torch.randn(n, 6) for n in (1, 5, 2, 9)]
    one_by_one = torch.stack([head(x) for x in bags])
    assert torch.allclose(head.forward_bags(bags), one_by_one, atol=1e-5)
    head.train()
    head.forward_bags(bags).sum().backward()  # trainable: gradients reach the first layer
    assert next(head.parameters()).grad.abs().sum() > 0


def test_the_rounds_follow_the_configured_schedule():
    """schedule and warmup_iters apply to each round's steps (the CNN preset uses them);
    the constant default trains as before."""
    constant = train_bags(_config(epochs=3, supervision="propagated"), _bags())
    again = train_bags(_config(epochs=3, supervision="propagated", schedule="constant"), _bags())
    cosine = train_bags(_config(epochs=3, supervision="propagated", schedule="cosine", warmup_iters=2), _bags())
    assert all(torch.equal(a, b) for a, b in zip(constant.state_dict().values(), again.state_dict().values()))
    assert not all(torch.equal(a, b) for a, b in zip(constant.state_dict().values(), cosine.state_dict().values()))
