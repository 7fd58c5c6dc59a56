"""Real images on D's real side (DiscriminatorConfig.real_images, training/real_images.py): each fake gets a real image of
its own prompt, D's loss reads those images where it read the teacher's outputs, the draws are reproducible (resume),
and settings that cannot work with real images are refused by name."""
from __future__ import annotations

import pytest
import torch
from test_core_training_fixtures import SCALE, PairsDataset, batch_of, config, resumed_halfway, tiny_elpips, tiny_unet

from onestep.latent_lpips.datasets import save_labelled
from training.config import DiscriminatorConfig
from training.losses import DiscriminatorLoss, MicroBatch
from training.real_images import RealImages, check_real_images, prompt_indices
from training.trainer import Trainer
from training.unet_interface import ModelInfo

INFO = ModelInfo(latent_channels=4, context_dim=32, latent_scale=SCALE)


def _images(n: int = 12, prompts: int = 4, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Latents (VAE units) whose every value is its prompt index (so a draw shows which prompt it came from) plus a
    per-image offset (so it shows which image), and the prompt indices, in no sorted order."""
    g = torch.Generator().manual_seed(seed)
    prompt = torch.randperm(n, generator=g) % prompts
    latent = (prompt.float() + torch.arange(n).float() / 100).view(n, 1, 1, 1).expand(n, 4, 16, 16) / SCALE
    return latent.contiguous(), prompt


def test_each_draw_is_an_image_of_the_items_own_prompt_and_covers_them_all():
    latent, prompt = _images()
    bank = RealImages(latent, prompt, INFO, "cpu")
    wanted = torch.tensor([3, 0, 0, 2, 1, 3] * 50)
    x = bank.draw(wanted, torch.Generator().manual_seed(0))
    assert x.shape == (300, 4, 16, 16)
    values = x[:, 0, 0, 0]
    assert torch.equal(values.floor().long(), wanted)  # x0 space: latent × scale, so the value is the prompt + offset
    drawn = {round(v * 100) % 100 for v in values.tolist()}
    assert drawn == set(range(len(prompt)))  # every image of every drawn prompt comes up
    again = bank.draw(wanted, torch.Generator().manual_seed(0))
    assert torch.equal(x, again) and not torch.equal(x, bank.draw(wanted, torch.Generator().manual_seed(1)))


def test_a_prompt_without_images_and_bad_files_are_named(tmp_path):
    latent, prompt = _images(prompts=3)
    bank = RealImages(latent, prompt, INFO, "cpu")
    with pytest.raises(ValueError, match=r"none for prompt index\(es\) \[3, 7\]"):
        bank.draw(torch.tensor([0, 3, 7, 3]), torch.Generator())
    with pytest.raises(ValueError, match="need their prompt index"):
        bank.draw(None, torch.Generator())
    with pytest.raises(ValueError, match="latent channels"):
        RealImages(latent[:, :1], prompt, INFO, "cpu")
    path = str(tmp_path / "real.safetensors")
    save_labelled(path, latent, prompt)
    loaded = RealImages.load(path, INFO, "cpu")
    assert len(loaded) == len(prompt) and torch.equal(loaded.x0, bank.x0)
    from safetensors.torch import save_file
    save_file({"images": latent}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ValueError, match="not a labelled-latents file"):
        RealImages.load(str(tmp_path / "other.safetensors"), INFO, "cpu")


def test_the_discriminator_loss_reads_the_given_real_side():
    trainer = Trainer(tiny_unet(), config(loss={"regression": "mse"}, discriminator={"z_conditioning": False}))
    b = batch_of(PairsDataset())
    pairs_real = trainer.info.to_unet_space(b["latent"])
    fake = pairs_real + 0.3
    images = torch.randn_like(pairs_real)

    def mb(real):
        return MicroBatch(z=b["noise"], real=real, latent=b["latent"], context=b["context"], extra={}, seed=b["seed"],
                          prompt_index=b["prompt_index"], rng=torch.Generator().manual_seed(5))

    loss = DiscriminatorLoss(trainer.config.generator.spec, (0, 100), True, False, 0.0, 16)
    d = trainer.discriminator
    with torch.no_grad():
        given, _ = loss.adversarial(d, fake, mb(pairs_real), real=images)
        as_pairs, _ = loss.adversarial(d, fake, mb(images))  # the same images standing in as the pairs' outputs
        own, _ = loss.adversarial(d, fake, mb(pairs_real))
    assert all(torch.equal(given[k], as_pairs[k]) for k in given)
    assert given["d_real"] != own["d_real"] and torch.equal(given["d_fake"], own["d_fake"])


def _bank_file(tmp_path) -> str:
    ds = PairsDataset()
    path = str(tmp_path / "real.safetensors")
    # other images than the pairs' (a shift and fresh noise), with the pairs' prompt indices
    latent = ds.latent + torch.randn(ds.latent.shape, generator=torch.Generator().manual_seed(3)) + 1.0
    save_labelled(path, latent, ds.prompt)
    return path


def test_training_with_real_images_runs_resumes_exactly_and_changes_the_run(tmp_path):
    path = _bank_file(tmp_path)
    make = lambda real="": Trainer(tiny_unet(), config(discriminator={"z_conditioning": False, "real_images": real}), tiny_elpips())
    trainer = make(path)
    assert len(trainer.method.real_images) == 16
    logs = trainer.train_step(batch_of(PairsDataset()))
    assert {"d_real", "d_fake", "d_mixed", "gan_g"} <= set(logs)
    plain = make().train_step(batch_of(PairsDataset()))
    assert logs["d_real"] != plain["d_real"]  # D saw the images, not the pairs
    half, resumed = resumed_halfway(lambda: make(path), tmp_path, steps=4)
    straight = make(path)
    straight.run(PairsDataset(), 4)
    for k, v in straight.discriminator.state_dict().items():
        assert torch.equal(v, resumed.discriminator.state_dict()[k]), k


def test_settings_that_cannot_use_real_images_are_refused(tmp_path):
    with pytest.raises(ValueError, match="needs z_conditioning off"):
        DiscriminatorConfig(real_images="real.safetensors")
    with pytest.raises(ValueError, match="needs gan_loss 'standard'"):
        Trainer(tiny_unet(), config(loss={"gan_loss": "relativistic", "regression": "mse"}, discriminator={"z_conditioning": False, "real_images": _bank_file(tmp_path)}))


def test_a_proof_scale_row_asks_for_them():  # the CLI's --d-real-images: tests/test_core_training_cli.py
    from proof_scale import rows

    p = rows.plan("diffusion2gan@steps=10:batch=8:d_real=images:z_conditioning=false", rows.ROW_DEFAULTS)
    assert rows.train_config(p, bf16=False, save_every=10, real_images="r.safetensors").discriminator.real_images == "r.safetensors"
    with pytest.raises(ValueError, match="needs a real-images file"):
        rows.train_config(p, bf16=False, save_every=10)
    with pytest.raises(ValueError, match="d_real must be one of"):
        rows.train_config(rows.plan("diffusion2gan@d_real=data", rows.ROW_DEFAULTS), bf16=False, save_every=10)
    assert rows.train_config(rows.plan("diffusion2gan", rows.ROW_DEFAULTS), bf16=False, save_every=10).discriminator.real_images == ""


def test_the_nodes_prompt_indices_read_one_for_all_or_one_per_image():
    assert prompt_indices("2", 3).tolist() == [2, 2, 2]
    assert prompt_indices(" 0, 1  2 ", 3).tolist() == [0, 1, 2]
    assert prompt_indices("0\n1,1", 3).tolist() == [0, 1, 1]
    for text, want in (("", "must be prompt indices"), ("a cat", "must be prompt indices"), ("-1", "must be prompt indices"), ("²", "must be prompt indices"),
                       ("0,1", "gives 2 prompt indices for 3 real images")):
        with pytest.raises(ValueError, match=want):
            prompt_indices(text, 3)


def test_real_images_that_cannot_stand_beside_the_pairs_are_named():
    prompts, shape = ["a red fox", "a blue bird", "a green frog"], (4, 16, 16)
    latent = torch.randn(3, *shape)
    check_real_images(latent, torch.tensor([0, 1, 2]), prompts, shape)  # fits
    with pytest.raises(ValueError, match=r"latents \(4, 8, 8\) but the pairs are \(4, 16, 16\) \(128×128 images"):
        check_real_images(torch.randn(3, 4, 8, 8), torch.tensor([0, 1, 2]), prompts, shape)
    with pytest.raises(ValueError, match=r"prompt index\(es\) \[3\] but the pairs have 3 prompt"):
        check_real_images(latent, torch.tensor([0, 1, 3]), prompts, shape)
    with pytest.raises(ValueError, match=r"none for prompt\(s\) 1 \('a blue bird'\), 2 \('a green frog'\)"):
        check_real_images(latent, torch.tensor([0, 0, 0]), prompts, shape)
