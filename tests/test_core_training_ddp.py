"""Data parallelism under torch.distributed: each rank trains on a disjoint slice of every global batch, and
2 ranks (gloo, CPU) × micro-batch b end in the same weights as 1 process accumulating 2 micro-batches of b."""
from __future__ import annotations

import os

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from safetensors.torch import load_file, save_file
from test_core_training_fixtures import PairsDataset, config, tiny_elpips, tiny_unet

from training.data import my_chunks
from training.trainer import Trainer

STEPS = 2


def _config(accumulation: int):
    return config(optim={"grad_accumulation": accumulation}, discriminator={"r1_every": 2}, seed=5)


def _final(trainer: Trainer) -> dict[str, torch.Tensor]:
    sd = {f"g.{k}": v for k, v in trainer.generator_state_dict(ema=True, layout="native").items()}
    sd.update({f"d.{k}": v.detach().clone().contiguous() for k, v in trainer.discriminator.state_dict().items()})
    return sd


def _rank(rank: int, folder: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{folder}/rendezvous", rank=rank, world_size=2)
    try:
        trainer = Trainer(tiny_unet(), _config(1), tiny_elpips())
        assert trainer.dist.world_size == 2 and trainer.dist.rank == rank
        logs = trainer.run(PairsDataset(), STEPS).logs
        save_file(_final(trainer), os.path.join(folder, f"rank{rank}.safetensors"))
        torch.save(logs, os.path.join(folder, f"logs{rank}.pt"))
    finally:
        dist.destroy_process_group()


def test_ranks_take_disjoint_slices():
    batch = {"i": torch.arange(8)}
    got = {r: [c["i"].tolist() for _, c in my_chunks(batch, 2, 2, r)] for r in (0, 1)}
    assert got == {0: [[0, 1], [4, 5]], 1: [[2, 3], [6, 7]]}


def test_two_ranks_equal_one_process_with_accumulation(tmp_path):
    folder = str(tmp_path)
    mp.spawn(_rank, args=(folder,), nprocs=2, join=True)
    single = Trainer(tiny_unet(), _config(2), tiny_elpips())
    want_logs = single.run(PairsDataset(), STEPS).logs
    want = _final(single)
    r0, r1 = (load_file(os.path.join(folder, f"rank{r}.safetensors")) for r in (0, 1))
    assert all(torch.equal(r0[k], r1[k]) for k in r0)  # the ranks stay in lock-step
    # The ranks sum each micro-batch's adversarial and R1 gradients in another order than one process accumulating
    # both micro-batches (R1 has its own backward), so the weights agree to float rounding, which Adam then divides
    # by the gradient's own size where that is ~0: such weights move by a fraction of one step (lr 1e-3), and few do.
    diff = torch.cat([(r0[k] - want[k]).abs().flatten() for k in want])
    assert diff.max().item() < 0.1 * 1e-3, diff.max().item()
    assert (diff > 1e-6).float().mean().item() < 0.01
    logs0 = torch.load(os.path.join(folder, "logs0.pt"), weights_only=True)  # a dict of floats: no pickled code
    assert abs(logs0["regression"] - want_logs["regression"]) < 1e-5 and "d_real" in logs0
    untrained = _final(Trainer(tiny_unet(), _config(2), tiny_elpips()))
    assert max((want[k] - untrained[k]).abs().max().item() for k in want) > 1e-3  # the comparison is not vacuous
