"""The proof-scale rectified-flow rows (issue 17, proof_scale/flow.py) end to end at --tiny scale on the CPU: the
teacher's few-step baseline, reflow_2rf scored at 1, 2, 4 Euler steps, the 2-RF's own pairs (stopped at a deadline
and resumed), InstaFlow from the 2-RF's weights, and the report's flow table; the files they leave."""
import json
import os
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from onestep import flow
from onestep.format import load_generator
from onestep.pairs.dataset import PairDataset
from onestep.pairs.validate import validate
from onestep.parameterization import OneStepGenerator
from proof_scale import init_row, pipeline
from proof_scale.flow import load_flow_unet, sample_flow_from_noise
from proof_scale.sampler import seed_noise
from proof_scale.teacher import build_unet, load_teacher
from training.diffusers_unet import DiffusersUNet

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: tiny convolutions run faster on one core
FLOW = ["teacher-steps", "distill-reflow_2rf", "pairs-2rf", "distill-instaflow"]


def _json(*parts: str):
    with open(os.path.join(*parts)) as f:
        return json.load(f)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    w = str(tmp_path_factory.mktemp("proof_scale_flow"))
    tiny = ["--work", w, "--tiny"]
    assert pipeline.main([*tiny, "--stage", "classifier,teacher,teacher-eval,pairs,latent-lpips"]) == 0
    assert pipeline.main([*tiny, "--stage", "pairs-2rf"]) == 2  # before the 2-RF exists: an error naming the stage
    assert pipeline.main([*tiny, "--stage", "teacher-steps,distill-reflow_2rf"]) == 0
    assert pipeline.main([*tiny, "--stage", "pairs-2rf", "--max-seconds", "1e-9"]) == pipeline.EXIT_INCOMPLETE
    assert sorted(f for f in os.listdir(os.path.join(w, "pairs_2rf")) if f.startswith("shard-")) == ["shard-000000.safetensors"]
    assert pipeline.main([*tiny, "--stage", "pairs-2rf,distill-instaflow"]) == 0
    assert pipeline.main([*tiny, "--stage", "all"]) == 0  # the table's rows and the report, which adds the flow table
    return w


def test_report_has_the_flow_rows_and_targets(work):
    result = _json(work, "proof_scale.json")
    assert set(result) == {*pipeline.ROWS, "variants", "meta", "flow"}
    rows = result["flow"]
    assert list(rows) == ["teacher_1", "teacher_2", "teacher_4", "reflow_2rf_1", "reflow_2rf_2", "reflow_2rf_4", "instaflow"]
    for name, r in rows.items():
        assert all(isinstance(r[k], (int, float)) and r[k] == r[k] for k in ("fd", "precision", "recall", "class_acc", "nfe")), name
    assert [rows[f"reflow_2rf_{k}"]["nfe"] for k in (1, 2, 4)] == [1, 2, 4] and rows["instaflow"]["nfe"] == 1
    cfg = _json(work, "teacher_eval.json")["cfg"]
    assert rows["teacher_4"]["nfe"] == 4 * (2 if cfg != 1.0 else 1)
    text = pipeline.markdown(result)
    assert "| reflow_2rf_4 |" in text and "2-RF at 4 Euler steps FD ≤ 1.5 × teacher" in text and "InstaFlow one step FD ≤ 1.30 × teacher" in text


def test_instaflow_starts_from_the_2rf_and_counts_its_samples(work):
    rf, one = _json(work, "distill", "reflow_2rf", "result.json"), _json(work, "distill", "instaflow", "result.json")
    assert one["row"]["started_from"]["row"] == "reflow_2rf"
    assert one["row"]["training_samples"] == one["row"]["selected_step"] * 4 + rf["row"]["training_samples"]
    assert one["plan"]["data"] == "pairs_2rf" and rf["plan"]["data"] == "pairs"


def test_flow_files_and_the_2rf_pairs(work):
    _, table, net, _ = load_teacher(os.path.join(work, "teacher.safetensors"))
    for row, method in (("reflow_2rf", "2-rectified-flow"), ("instaflow", "instaflow")):
        _, meta = load_generator(os.path.join(work, "generators", f"{row}.safetensors"))
        assert (meta.method, meta.prediction, meta.timestep, meta.latent_format) == (method, "flow", 1000, "fmnist32")
    unet = load_flow_unet(os.path.join(work, "generators", "reflow_2rf.safetensors"), net, torch.device("cpu"))
    z, labels = seed_noise(3), torch.tensor([3])
    with torch.no_grad():  # one Euler step of the flow is the file's one-step formula x0 = z + v(z, 1000)
        one = OneStepGenerator(DiffusersUNet(unet, 1.0, 0.0), meta.spec())(z, table[labels])
    assert torch.allclose(sample_flow_from_noise(unet, table, z, labels, 1), one, atol=1e-5)
    report = validate(os.path.join(work, "pairs_2rf"))
    assert report.ok and report.items == pipeline.TINY.pairs, report.text()
    item = PairDataset(os.path.join(work, "pairs_2rf"))[5]  # the 2-RF's own Euler ODE from the item's seed and prompt
    steps = pipeline.TINY.flow_pairs_steps
    want = flow.euler(lambda x, tau: unet(x, tau, encoder_hidden_states=item["context"][None]).sample, seed_noise(5), steps)
    assert torch.allclose(item["latent"][None], want, atol=1e-5) and torch.equal(item["noise"][None], seed_noise(5))


def test_a_2rf_carried_into_a_new_work_folder_makes_its_pairs(work, tmp_path):
    """Device machines start bare: the 2-RF's selected weights come back as two halves, proof_scale.init_row packs them with
    the row's result.json, and the next session's pairs-2rf samples the placed weights (no generator file there)."""
    rf_dir = os.path.join(work, "distill", "reflow_2rf")
    best = load_file(os.path.join(rf_dir, "best.safetensors"))
    keys = sorted(best)
    halves = [str(tmp_path / "best_a.safetensors"), str(tmp_path / "best_b.safetensors")]
    save_file({k: best[k] for k in keys[: len(keys) // 2]}, halves[0])
    save_file({k: best[k] for k in keys[len(keys) // 2:]}, halves[1])
    init, w2 = str(tmp_path / "init"), str(tmp_path / "work2")
    assert init_row.main(["pack", init, "--row", "reflow_2rf", "--weights", *halves, "--result", os.path.join(rf_dir, "result.json")]) == 0
    # nor the teacher's pairs: a session that only distils the carried 2-RF does not make them (~240 s on the GPU)
    skip = {"distill", "generators", "pairs_2rf", "pairs_2rf.json", "proof_scale.json", "teacher_steps.json", "logs",
            "pairs", "pairs_heldout", "pairs.json", "pairs_timing.json"}
    shutil.copytree(work, w2, ignore=lambda d, names: [n for n in names if d == work and n in skip])
    assert init_row.place(init, w2) == "reflow_2rf" and init_row.place(init, w2) is None  # once
    assert _json(w2, "distill", "reflow_2rf", "result.json")["generator"] is None  # the first session's path is not here
    assert pipeline.main(["--work", w2, "--tiny", "--stage", "pairs-2rf"]) == 0
    placed = os.path.join(w2, "distill", "reflow_2rf", "best.safetensors")
    assert _json(w2, "pairs_2rf.json")["source"] == placed and _json(w2, "pairs_2rf.json")["count"] == pipeline.TINY.pairs
    assert not os.path.exists(os.path.join(w2, "pairs"))
    _, table, net, _ = load_teacher(os.path.join(w2, "teacher.safetensors"))
    unet = build_unet(net)
    unet.load_state_dict({k: v.float() for k, v in load_file(placed).items()})
    item = PairDataset(os.path.join(w2, "pairs_2rf"))[5]
    want = flow.euler(lambda x, tau: unet(x, tau, encoder_hidden_states=item["context"][None]).sample, seed_noise(5),
                      pipeline.TINY.flow_pairs_steps)
    assert torch.allclose(item["latent"][None], want, atol=1e-5)


def test_instaflow_gan_stage_from_carried_rows(work, tmp_path):
    """Issue 17's GAN stage as run 41 plans it over two chained device calls, one carried row each (64 MiB a call): the
    2-RF placed makes its pairs, then InstaFlow's E-LatentLPIPS row placed starts `instaflow@gan=true` (D on real
    images, G held while D leads) in a work folder that has no teacher pairs."""
    packed = {}
    for row in ("reflow_2rf", "instaflow"):
        src = os.path.join(work, "distill", row)
        packed[row] = str(tmp_path / f"init_{row}")
        assert init_row.main(["pack", packed[row], "--row", row, "--weights", os.path.join(src, "best.safetensors"),
                              "--result", os.path.join(src, "result.json")]) == 0
    skip = {"distill", "generators", "pairs_2rf", "pairs_2rf.json", "proof_scale.json", "teacher_steps.json", "logs",
            "pairs", "pairs_heldout", "pairs.json", "pairs_timing.json"}
    w3 = str(tmp_path / "work3")
    shutil.copytree(work, w3, ignore=lambda d, names: [n for n in names if d == work and n in skip])
    assert init_row.place(packed["reflow_2rf"], w3) == "reflow_2rf"
    assert pipeline.main(["--work", w3, "--tiny", "--stage", "pairs-2rf"]) == 0
    assert init_row.place(packed["instaflow"], w3) == "instaflow"
    g = ("init_from=instaflow:gan=true:regression=latentlpips:lr=3e-5:lr_decay=constant:steps=4:r1_gamma=0:d_t_max=100:d_mbstd=4"
         ":d_real=images:z_conditioning=false:gan_weight=1:lr_d_ratio=5:mix_and_match=false:lr_d_schedule=constant:d_beta2=0.99"
         ":lr_warmup=1:gan_warmup=2:d_lead=2:gan_ramp=1:hold_g=true:gan_scale_max=1")
    assert pipeline.main(["--work", w3, "--tiny", "--stage", f"distill-instaflow@{g}"]) == 0
    rows = [d for d in os.listdir(os.path.join(w3, "distill")) if d not in ("reflow_2rf", "instaflow")]
    assert len(rows) == 1
    result = _json(w3, "distill", rows[0], "result.json")
    assert result["row"]["started_from"]["row"] == "instaflow" and result["row"]["nfe"] == 1
    assert result["row"]["steps"] == 4 and result["row"]["fd"] > 0
    assert not os.path.exists(os.path.join(w3, "pairs"))


def test_a_pairs_folder_is_scored_like_a_row(work):
    """proof_scale.score_pairs: the 2-RF's own pairs (InstaFlow's regression targets) scored in disjoint sets with the
    work folder's classifier and reference — the same numbers the evaluator gives those latents."""
    from proof_scale import score_pairs
    from proof_scale.classifier import load_classifier
    from proof_scale.data import load_split
    from proof_scale.evaluator import load_or_build_reference, score

    folder = os.path.join(work, "pairs_2rf")
    result = score_pairs.score_folder(folder, work, score_pairs.FASHION_MNIST_DIR, count=8, sets=2, test_limit=pipeline.TINY.test_limit)
    x, y = score_pairs.latents(folder, 16)
    assert x.shape == (16, 1, 32, 32) and torch.equal(x[5], PairDataset(folder)[5]["latent"].float())
    assert y.tolist() == [int(PairDataset(folder)[i]["prompt_index"]) for i in range(16)]
    classifier, _ = load_classifier(os.path.join(work, "classifier.safetensors"))
    ref = load_or_build_reference(os.path.join(work, "classifier.ref.safetensors"), classifier, load_split("test", pipeline.TINY.test_limit)[0])
    second = score(x[8:], y[8:], ref)
    assert result["fd_sets"][1] == pytest.approx(second["fd"]) and result["count"] == 8
    assert result["fd"] == pytest.approx(sum(result["fd_sets"]) / 2) and 0 <= result["class_acc"] <= 1
    with pytest.raises(ValueError, match="fewer than the 17"):
        score_pairs.latents(folder, 17)
