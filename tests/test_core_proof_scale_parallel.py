"""proof_scale.parallel: the phase plan per GPU count, and a whole --tiny run on the CPU through the child
processes, with the pairs collected by two processes (the multi-GPU path's rank split and adoption)."""
import json
import os
import time

import pytest
import torch

from onestep.pairs.dataset import PairDataset
from onestep.pairs.validate import validate
from proof_scale import parallel, pipeline
from proof_scale.sampler import sample_teacher_from_noise, seed_noise
from proof_scale.teacher import load_teacher

ROWS = [f"distill-{r}" for r in pipeline.DISTILL_ROWS]
ORDER = ["classifier", "latent-lpips", "teacher", "teacher-eval", "pairs", *ROWS, "report"]


def _flat(plan):
    return [(visible, stage) for phase in plan for visible, stages in phase for stage in stages]


@pytest.mark.parametrize("gpus", [0, 1, 2, 4, 8])
def test_every_stage_runs_once_after_what_it_needs(gpus):
    plan = parallel.phases(gpus)
    stages = [s for _, s in _flat(plan)]
    assert sorted(stages) == sorted(ORDER)
    phase_of = {s: i for i, phase in enumerate(plan) for _, ss in phase for s in ss}
    position = {s: i for i, s in enumerate(stages)}

    def before(a, b):  # a finishes before b starts: an earlier phase, or earlier in the same child
        same_child = any(a in ss and b in ss for phase in plan for _, ss in phase)
        return phase_of[a] < phase_of[b] or (same_child and position[a] < position[b])

    for a, b in [("classifier", "teacher-eval"), ("teacher", "teacher-eval"), ("teacher-eval", "pairs"), ("latent-lpips", "pairs")]:
        assert before(a, b), (gpus, a, b)
    for row in ROWS:
        assert before("pairs", row) and before(row, "report")


def test_four_gpus_share_the_work():
    plan = parallel.phases(4)
    assert plan[0] == [("0", ["teacher"]), ("1", ["classifier", "latent-lpips"])]
    assert plan[2] == [("0,1,2,3", ["pairs"])]
    assert sorted(v for v, _ in plan[3]) == ["0", "1", "2", "3"] and all(len(s) == 1 for _, s in plan[3])
    assert [len(s) for _, s in parallel.phases(2)[3]] == [2, 2]


def test_one_gpu_trains_rows_and_variants_side_by_side():
    variant = "diffusion2gan@timestep=625"
    plan = parallel.phases(1, rows_per_gpu=3, variants=(variant,))
    rows = plan[1]
    assert [v for v, _ in rows] == ["0", "0", "0"]  # three children on the one GPU
    assert sorted(s for _, ss in rows for s in ss) == sorted([*ROWS, f"distill-{variant}"])
    assert plan[0] == [("0", ["classifier", "latent-lpips", "teacher", "teacher-eval", "pairs"])] and plan[-1] == [("0", ["report"])]


def test_one_gpu_with_one_slot_runs_everything_in_one_child():
    """Each child pays its start (imports, CUDA set-up: ~21 s a phase on the H200s); on one GPU with one row slot
    nothing runs side by side, so one child runs every stage in order."""
    variant = "sid_lsg_teacher_cfg@anchor=0.25"
    assert parallel.phases(1, variants=(variant,), base_rows=()) == [
        [("0", ["classifier", "teacher", "teacher-eval", "pairs", f"distill-{variant}"])]]
    assert parallel.phases(1) == [[("0", ["classifier", "latent-lpips", "teacher", "teacher-eval", "pairs", *ROWS, "report"])]]
    assert parallel.phases(0)[0][0][0] is None


def test_only_variants_skip_the_base_rows_and_the_report():
    variant = "diffusion2gan@init_from=regression_latentlpips:gan_warmup=300:d_lead=300"
    plan = parallel.phases(2, variants=(variant,), base_rows=())
    assert [s for _, s in _flat(plan)][-1] == f"distill-{variant}" and "report" not in [s for _, s in _flat(plan)]
    assert not any(s in ROWS for _, s in _flat(plan))


def test_the_trunk_is_trained_only_when_a_row_regresses_with_latentlpips():
    sid = "sid_lsg@init_from=diffusion2gan:anchor=0.25:regression=mse"
    assert parallel.phases(2, variants=(sid, "sid_lsg_teacher_cfg"), base_rows=())[0] == [("0", ["teacher"]), ("1", ["classifier"])]
    assert parallel.phases(1, variants=(sid,), base_rows=("regression_mse",))[0][0][1][:2] == ["classifier", "teacher"]
    for needs in ((), ("regression_latentlpips",)):  # a base row or a chain's row with a LatentLPIPS loss
        chain = (("teacher-steps", "distill-reflow_2rf", "pairs-2rf", "distill-instaflow"),) if not needs else ()
        assert parallel.phases(2, variants=(sid,), base_rows=needs, chains=chain)[0][1] == ("1", ["classifier", "latent-lpips"])


def test_data_free_rows_alone_skip_the_pairs_stage():
    """A data-free SiD-LSG row reads prompts and noise only: making 80,000 teacher pairs for it spent ~265 s of a 30-minute
    device session. An anchored SiD row, any other row and the flow chain still get them, before they train."""
    free = ("sid_lsg@lr=1e-4", "sid_lsg_teacher_cfg@init_from=sid_lsg_data_free:steps=3000")
    assert parallel.phases(1, variants=free, base_rows=()) == [[("0", ["classifier", "teacher", "teacher-eval", *(f"distill-{v}" for v in free)])]]
    assert all("pairs" not in ss for phase in parallel.phases(2, variants=free, base_rows=()) for _, ss in phase)
    chain = ("teacher-steps", "distill-reflow_2rf", "pairs-2rf", "distill-instaflow")
    for variants, base, chains in (((*free, "sid_lsg@anchor=0.25"), (), ()), (free, ("regression_mse",), ()), (free, (), (chain,))):
        for gpus in (1, 2):
            stages = [s for _, s in _flat(parallel.phases(gpus, variants=variants, base_rows=base, chains=chains))]
            assert stages.count("pairs") == 1 and stages.index("pairs") < min(i for i, s in enumerate(stages) if s.startswith("distill-")), (variants, base, gpus)
    # InstaFlow from a carried 2-RF trains on the 2-RF's own pairs: the teacher's (~240 s) are not made for it
    carried = ("pairs-2rf", "distill-instaflow", "distill-instaflow@init_from=instaflow:gan=true:r1_gamma=0")
    for gpus in (1, 2):
        assert all("pairs" not in ss for phase in parallel.phases(gpus, base_rows=(), chains=(carried,)) for _, ss in phase)


def test_too_little_time_stops_before_starting_anything(tmp_path, capsys):
    code = parallel.main(["--work", str(tmp_path), "--tiny", "--gpus", "0", "--max-seconds", str(parallel.MARGIN)])
    assert code == pipeline.EXIT_INCOMPLETE
    assert "INCOMPLETE" in capsys.readouterr().out and not os.path.exists(os.path.join(tmp_path, "logs"))


def test_stage_options_are_refused(tmp_path):
    with pytest.raises(SystemExit):
        parallel.main(["--work", str(tmp_path), "--stage", "teacher"])


def test_whole_tiny_run_with_two_pair_processes(tmp_path):
    w = str(tmp_path / "work")
    code = parallel.main(["--work", w, "--tiny", "--gpus", "0", "--pairs-devices", "2", "--max-seconds", "0"])
    assert code == 0
    with open(os.path.join(w, "proof_scale.json")) as f:
        result = json.load(f)
    assert set(result) == {*pipeline.ROWS, "variants", "meta"}
    assert result["meta"]["commands"]["report"].startswith("python -m proof_scale.parallel ")
    assert all(os.path.getsize(os.path.join(w, "logs", f)) > 0 for f in os.listdir(os.path.join(w, "logs")))
    # the two processes' shards form one valid dataset, and an item of each replays the teacher
    folder = os.path.join(w, "pairs")
    assert validate(folder).ok
    with open(os.path.join(w, "pairs.json")) as f:
        assert json.load(f)["devices"] == 2
    unet, table, _, _ = load_teacher(os.path.join(w, "teacher.safetensors"))
    ds = PairDataset(folder)
    s = ds.settings
    for i in (0, len(ds) - 1):  # shard 0 (rank 0) and the last shard (rank 1)
        item = ds[i]
        seed, label = int(item["seed"]), int(item["prompt_index"])
        assert torch.equal(item["noise"], seed_noise(seed)[0])
        again = sample_teacher_from_noise(unet, table, seed_noise(seed), torch.tensor([label]), s.steps, s.cfg, s.sampler, s.batch_size)
        torch.testing.assert_close(item["latent"], again[0], rtol=1e-4, atol=1e-5)


def test_absolute_deadline_counts_from_the_clock_not_from_the_start(tmp_path):
    run = pipeline.Run(pipeline.parse_args(["--work", str(tmp_path), "--stage", "teacher", "--deadline-unix", str(time.time() - 5)]), [])
    assert run.left() < 0
    run = pipeline.Run(pipeline.parse_args(["--work", str(tmp_path), "--stage", "teacher", "--deadline-unix", str(time.time() + 50),
                                            "--max-seconds", "1000"]), [])
    assert 45 < run.left() <= 50
    run = pipeline.Run(pipeline.parse_args(["--work", str(tmp_path), "--stage", "teacher", "--max-seconds", "0"]), [])
    assert run.left() == float("inf")


def test_a_chain_takes_a_slot_like_a_row_and_keeps_its_order():
    chain = ("teacher-steps", "distill-reflow_2rf", "pairs-2rf", "distill-instaflow")
    variant = "diffusion2gan@init_from=regression_latentlpips:gan_warmup=300:d_lead=300"
    last = parallel.phases(2, variants=(variant,), base_rows=(), chains=(chain,))[-1]
    assert last == [("0", [f"distill-{variant}"]), ("1", list(chain))]
    one = parallel.phases(1, variants=(variant,), base_rows=(), chains=(chain,))[-1]
    assert one[0][1][-5:] == [f"distill-{variant}", *chain]  # one slot: the row, then the chain in order


def test_an_unknown_chain_stage_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        parallel.main(["--work", str(tmp_path), "--tiny", "--gpus", "0", "--chains", "teacher-steps,pairs-3rf"])
    assert e.value.code == 2 and "pairs-3rf" in capsys.readouterr().err


def test_variants_joined_by_a_comma_are_refused_before_anything_runs(tmp_path, capsys):
    # session 12 lost a device call: two variants joined by ',' reached the distillation phase after the pairs
    joined = "diffusion2gan@lr=3e-5:steps=30,diffusion2gan@lr=1e-5:steps=30"
    with pytest.raises(SystemExit) as e:
        parallel.main(["--work", str(tmp_path), "--tiny", "--gpus", "0", "--rows", "none", "--variants", joined])
    assert e.value.code == 2 and "separated by ';'" in capsys.readouterr().err and os.listdir(tmp_path) == []


def test_sid_variants_pass_the_check_before_the_teacher_is_scored(tmp_path, capsys):
    # session 13 lost two calls: the syntax check asked for the teacher's CFG, which SiD rows take from teacher-eval
    sid = "sid_lsg@lr=1e-4:steps=30;sid_lsg@lr=1e-5:kappa4=1:steps=30"
    parallel.main(["--work", str(tmp_path), "--tiny", "--gpus", "0", "--rows", "none", "--variants", sid, "--max-seconds", "1"])
    out = capsys.readouterr()
    assert "not a row variant" not in out.err and "INCOMPLETE" in out.out  # past the check, stopped by the deadline
    with pytest.raises(SystemExit) as e:
        parallel.main(["--work", str(tmp_path), "--tiny", "--gpus", "0", "--rows", "none", "--variants", "sid_lsg@kapa=2"])
    assert e.value.code == 2 and "kapa" in capsys.readouterr().err


def _records(work, seeds):
    os.makedirs(work, exist_ok=True)
    for name, body in (("classifier.json", {}), ("teacher.json", {}), ("teacher_eval.json", {"seeds": list(range(seeds))})):
        with open(os.path.join(work, name), "w") as f:
            json.dump(body, f)


def test_finished_stages_start_no_child(tmp_path, capsys):
    """A chained call finds the stages before the rows done: their child (its start, imports and CUDA set-up, ~20 s of each
    device call) is not started, and a phase whose stages are all done is passed over."""
    w = str(tmp_path / "work")
    _records(w, seeds=2)
    children = [("0", ["classifier", "teacher", "teacher-eval", "distill-sid_lsg"]), ("1", ["teacher"])]
    assert parallel.unfinished(children, w, teacher_seeds=3) == [("0", ["teacher-eval", "distill-sid_lsg"])]  # 2 of 3 seeds
    assert parallel.unfinished(children, w, teacher_seeds=2) == [("0", ["distill-sid_lsg"])]
    code = parallel.main(["--work", w, "--tiny", "--gpus", "0", "--rows", "none", "--teacher-seeds", "2", "--max-seconds", "0"])
    assert code == 0 and "phase 1: every stage already done" in capsys.readouterr().out
    assert not os.path.exists(os.path.join(w, "logs"))  # no child ran
    assert all(pipeline.stage_finished(w, stage, 3) for stage in ("classifier", "teacher"))
    assert pipeline.stage_finished(w, "teacher-eval", 2) and not pipeline.stage_finished(w, "teacher-eval", 3)
    assert not pipeline.stage_finished(w, "report", 2)  # no record: always run
