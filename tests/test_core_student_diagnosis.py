"""benchmarks/student_diagnosis.py: the readings it reports mean what its tables say; the students it reads load as scored."""
from __future__ import annotations

import os

import pytest
import torch
from safetensors.torch import save_file

from benchmarks.score_generator import student_from_weights
from benchmarks.student_diagnosis import fd_terms, main, noise_power, per_class_shift, radial_power, unbiased_sq_mean
from onestep.schedule import SD_SCHEDULE
from proof_scale.metrics import frechet_distance, gaussian_stats
from proof_scale.teacher_import import import_teacher

TEACHER = os.path.join(os.path.dirname(__file__), "..", "default_models", "proof_scale", "fmnist-teacher.safetensors")


def test_the_fd_terms_add_up_and_a_shift_is_all_mean_term():
    g = torch.Generator().manual_seed(0)
    real = torch.randn(4000, 8, generator=g, dtype=torch.float64)
    shifted = torch.randn(4000, 8, generator=g, dtype=torch.float64) + 0.5
    narrow = 0.5 * torch.randn(4000, 8, generator=g, dtype=torch.float64)
    ref = gaussian_stats(real)
    s, n = fd_terms(*gaussian_stats(shifted), *ref), fd_terms(*gaussian_stats(narrow), *ref)
    assert abs(s["mean_term"] + s["cov_term"] - frechet_distance(*gaussian_stats(shifted), *ref)) < 1e-9
    assert s["mean_term"] > 10 * abs(s["cov_term"]) and abs(s["variance_ratio"] - 1) < 0.1
    assert n["cov_term"] > 10 * n["mean_term"] and abs(n["variance_ratio"] - 0.25) < 0.03


def test_blur_shows_as_lost_power_at_high_radii_only():
    g = torch.Generator().manual_seed(1)
    sharp = torch.rand(64, 1, 32, 32, generator=g) * 2 - 1
    kernel = torch.tensor([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]).div(16).view(1, 1, 3, 3)
    blurred = torch.nn.functional.conv2d(torch.nn.functional.pad(sharp, (1, 1, 1, 1), mode="circular"), kernel)
    ratio = radial_power(blurred) / radial_power(sharp)
    assert ratio.shape == (17,) and abs(ratio[0].item() - 1) < 1e-6  # a normalised blur keeps the mean
    assert ratio[1] > 0.9 and ratio[16] < 0.05 and bool((ratio[1:].diff() <= 1e-6).all())


def test_white_noise_power_per_bin_is_sigma_squared_times_pixels():
    sigma = SD_SCHEDULE.sigma(100)
    noise = sigma * torch.randn(2000, 1, 32, 32, generator=torch.Generator().manual_seed(2))
    measured = radial_power(noise)[1:].mean().item()
    assert abs(measured / noise_power(100, 32 * 32) - 1) < 0.05
    assert noise_power(0, 1024) < noise_power(10, 1024) < noise_power(100, 1024)


def test_class_shift_names_the_class_that_is_off():
    g = torch.Generator().manual_seed(3)
    real, labels = torch.randn(300, 4, generator=g), torch.arange(300) % 3
    fake = real.clone()
    fake[labels == 2] += 1.0
    shifts = per_class_shift(fake, labels, real, labels)
    assert shifts[0] == shifts[1] == 0 and abs(shifts[2] - 4.0) < 1e-5


@pytest.mark.parametrize("students", [[], ["--weights", "a=w.safetensors"]])
def test_no_student_or_weights_without_their_architecture_is_refused_before_any_work(students, capsys):
    with pytest.raises(SystemExit) as e:
        main(students + ["--context", "missing.safetensors", "--classifier", "missing", "--data", "missing"])
    assert e.value.code == 2 and "--teacher, whose architecture" in capsys.readouterr().err


def test_weights_split_over_files_load_into_the_teachers_architecture(tmp_path):
    teacher, net, _ = import_teacher(TEACHER)
    sd = {k: v.half().contiguous() for k, v in teacher.state_dict().items()}  # as a device call returns them
    keys = sorted(sd)
    files = [str(tmp_path / "a.safetensors"), str(tmp_path / "b.safetensors")]
    save_file({k: sd[k] for k in keys[:5]}, files[0])
    save_file({k: sd[k] for k in keys[5:]}, files[1])
    student = student_from_weights(net, files).state_dict()
    assert set(student) == set(sd) and all(student[k].dtype == torch.float32 and torch.equal(student[k].half(), sd[k]) for k in sd)
    with pytest.raises(RuntimeError, match="Missing key"):
        student_from_weights(net, files[1:])


def test_paired_readings_tell_a_shrunken_teacher_from_one_that_goes_its_own_way(monkeypatch):
    """paired(): the arithmetic, on features that are the pixels themselves (the classifier is the scored one elsewhere)."""
    import benchmarks.student_diagnosis as sd
    monkeypatch.setattr(sd, "prepare", lambda x: x)
    monkeypatch.setattr(sd, "predict", lambda _, x: (x.flatten(1).float(), x.flatten(1)[:, :3].argmax(1)))
    g = torch.Generator().manual_seed(4)
    labels = torch.arange(400) % 4
    centres = torch.randn(4, 1, 4, 4, generator=g)
    teacher = centres[labels] + torch.randn(400, 1, 4, 4, generator=g)
    same = sd.paired(teacher.clone(), teacher, labels, None)
    assert same["rmse_mean"] == 0 and same["class_disagreement"] == 0
    assert abs(same["spread_ratio"] - 1) < 1e-9 and abs(same["slope"] - 1) < 1e-9 and abs(same["correlation"] - 1) < 1e-9
    class_means = torch.stack([teacher[labels == c].mean(0) for c in range(4)])[labels]
    shrunk = sd.paired(class_means + 0.5 * (teacher - class_means), teacher, labels, None)  # the regression's pull
    assert abs(shrunk["spread_ratio"] - 0.25) < 1e-6 and abs(shrunk["slope"] - 0.5) < 1e-6 and abs(shrunk["correlation"] - 1) < 1e-6
    own = sd.paired(centres[labels] + torch.randn(400, 1, 4, 4, generator=g), teacher, labels, None)  # same spread, other samples
    assert abs(own["spread_ratio"] - 1) < 0.15 and abs(own["correlation"]) < 0.1 and own["class_disagreement"] > 0.2
    one_off = teacher.clone()
    one_off[7] += 10.0
    lone = sd.paired(one_off, teacher, labels, None)
    assert lone["worst_tenth_share"] == 1.0 and lone["rmse_median"] == 0 and lone["rmse_p90"] == 0
    spread = sd.paired(teacher + 0.1 * torch.randn(400, 1, 4, 4, generator=g), teacher, labels, None)
    assert 0.1 < spread["worst_tenth_share"] < 0.25  # an even error: about a tenth of it in the worst tenth
    assert abs(spread["offset"]) < 1e-3 and abs(spread["class_offset"]) < 2e-3  # noise is not an offset (unbiased)
    moved = teacher.clone()
    moved[labels == 1] += 0.5  # one class of four shifted by 0.5 in each of 16 features: 4 per class, 1 over all
    m = sd.paired(moved + 0.1 * torch.randn(400, 1, 4, 4, generator=g), teacher, labels, None)
    assert abs(m["class_offset"] - 1.0) < 0.01 and abs(m["offset"] - 0.25) < 0.01 and abs(m["slope"] - 1) < 0.02


def test_an_unbiased_squared_mean_is_zero_for_centred_noise_on_average():
    g = torch.Generator().manual_seed(5)
    naive = [float(torch.randn(30, 8, generator=g, dtype=torch.float64).mean(0).pow(2).sum()) for _ in range(400)]
    fixed = [unbiased_sq_mean(torch.randn(30, 8, generator=g, dtype=torch.float64)) for _ in range(400)]
    assert abs(sum(naive) / 400 - 8 / 30) < 0.03 and abs(sum(fixed) / 400) < 0.03
