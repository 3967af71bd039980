"""The default-model report's measuring pieces: the detail ratio against OpenCV, the seeded
evaluation degradations, and a teacher started from an RSD student's weights."""

import cv2
import numpy as np
import pytest
import torch
from conftest import natural_image

from sr1step.data.degradations import BicubicDegradation
from sr1step.data.eval_degradations import EVAL_DEGRADATIONS, MODERATE
from sr1step.metrics.detail import detail_ratio, laplacian_variance


def _reference_laplacian_variance(rgb: np.ndarray, border: int) -> float:
    """OpenCV's Laplacian of Y (BT.601, 16..235) on the 0..255 scale, border cropped."""
    y = 16 + rgb.astype(np.float64) @ np.array([65.481, 128.553, 24.966])
    lap = cv2.Laplacian(y, cv2.CV_64F, ksize=1, borderType=cv2.BORDER_REFLECT_101)
    return float(lap[border:-border, border:-border].var(ddof=1))


def test_laplacian_variance_matches_opencv():
    rgb = natural_image(40, seed=3)
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None]
    assert laplacian_variance(x, 4).item() == pytest.approx(_reference_laplacian_variance(rgb, 4), rel=1e-9)


def test_detail_ratio_orders_blurred_sharp_and_noisy():
    hr = torch.from_numpy(natural_image(64, seed=1)).permute(2, 0, 1)[None]
    blurred = cv2.GaussianBlur(natural_image(64, seed=1), (7, 7), 1.5)
    blurred = torch.from_numpy(blurred).permute(2, 0, 1)[None]
    noisy = (hr + 0.05 * torch.randn(hr.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    assert detail_ratio(hr, hr).item() == pytest.approx(1.0)
    assert detail_ratio(blurred, hr).item() < 0.3 < 1.0 < detail_ratio(noisy, hr).item()
    with pytest.raises(ValueError, match="shapes differ"):
        detail_ratio(hr[..., :32], hr)


@pytest.mark.parametrize("name", list(EVAL_DEGRADATIONS))
def test_each_evaluation_degradation_is_seeded_and_quantised(name):
    hr = torch.from_numpy(np.stack([natural_image(64, s) for s in (0, 1)])).permute(0, 3, 1, 2)
    a, b = EVAL_DEGRADATIONS[name](hr, 7), EVAL_DEGRADATIONS[name](hr, 7)
    assert a.shape == (2, 3, 16, 16) and torch.equal(a, b)
    assert torch.equal((a * 255).round() / 255, a) and 0 <= a.min() and a.max() <= 1
    if name in ("moderate", "papers", "mild"):
        assert not torch.equal(EVAL_DEGRADATIONS[name](hr, 8), a)  # the seed matters


def test_clean_inputs_and_the_moderate_draw_are_what_they_say():
    hr = torch.from_numpy(natural_image(64, 0)).permute(2, 0, 1)[None]
    assert torch.equal(EVAL_DEGRADATIONS["clean-bicubic"](hr, 0), BicubicDegradation(4)(hr))
    area = cv2.resize(natural_image(64, 0), (16, 16), interpolation=cv2.INTER_AREA)
    ours = EVAL_DEGRADATIONS["clean-area"](hr, 0)[0].permute(1, 2, 0).numpy()
    assert np.abs(ours - area).max() <= 0.5 / 255 + 1e-6
    # the degraded inputs differ from the clean ones by more than rounding
    clean = BicubicDegradation(4)(hr)
    gaps = {d: (EVAL_DEGRADATIONS[d](hr, 0) - clean).abs().mean().item() for d in ("mild", "moderate")}
    assert gaps["mild"] > 1 / 255 and gaps["moderate"] > 1 / 255
    assert MODERATE == ((0.8, 1.6), (2.0, 8.0), (60.0, 90.0))  # the range


def test_a_teacher_starts_from_an_rsd_students_weights(tmp_path):
    import dataclasses

    from sr1step.generators.resshift import ResShiftGenerator
    from sr1step.methods.resshift import NETWORKS, TRAIN_PRESETS, ResShiftRecipe, with_noise_input

    torch.manual_seed(0)
    student = ResShiftGenerator(with_noise_input(NETWORKS["tiny"], 1))
    student.save_folder(tmp_path / "student", "rsd")
    run = TRAIN_PRESETS["tiny"]()
    model = dataclasses.replace(run.model, init_weights=str(tmp_path / "student"))
    run = dataclasses.replace(run, model=model)
    teacher = ResShiftRecipe(run).gen.unet.state_dict()
    theirs = student.unet.state_dict()
    key = "input_blocks.0.0.weight"
    assert teacher[key].shape[1] == theirs[key].shape[1] - 1  # the noise channel (last) dropped
    assert torch.equal(teacher[key], theirs[key][:, :-1])
    assert all(torch.equal(teacher[k], theirs[k]) for k in teacher if k != key)


def test_the_real_presets_are_the_compact_recipes_on_the_blind_teacher_and_its_data():
    import dataclasses

    from sr1step.data.degradations import REAL_REALESRGAN
    from sr1step.methods import rsd, tadsr

    for presets in (rsd.TRAIN_PRESETS, tadsr.TRAIN_PRESETS):
        real, compact = presets["real"](), presets["compact"]()
        assert real.train == compact.train and real.model.teacher == "runs/real-teacher/export"
        assert real.data.realesrgan == REAL_REALESRGAN and real.data.rotate and not compact.data.rotate
        assert (
            dataclasses.replace(real.data, realesrgan=compact.data.realesrgan, rotate=False) == compact.data
        )
    assert rsd.TRAIN_PRESETS["real"]().model.perceptual_weight == 200.0
