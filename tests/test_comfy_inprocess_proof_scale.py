"""The proof-scale model set in-process with the real ComfyUI modules (host tree on PYTHONPATH), no server:
its CLIP, pixel-grid VAE, teacher and one-step student against reference formulas on the colleague's
diffusers UNet. Random-weight stand-ins of a tiny architecture; a few seconds on 2 CPU cores."""
import itertools
import math
import os

import pytest
import torch
from comfy_host import REPO, pack_nodes
from safetensors import safe_open

try:
    import comfy.cli_args as comfy_cli_args
except ImportError as e:  # a missing host is a failure, not a skip
    raise ImportError("run with the ComfyUI tree on PYTHONPATH (scripts/test.sh does)") from e
comfy_cli_args.args.cpu = True

import comfy.sample
import comfy.samplers
import folder_paths
from comfy.model_sampling import EPS, ModelSamplingDiscrete

from proof_scale.data import PROMPTS
from proof_scale.teacher import TeacherNetConfig
from tools import proof_scale_encoder as E

TINY_NET = TeacherNetConfig(block_out_channels=(32, 32), attention=(False, True), layers_per_block=1, heads=2, context_dim=64)


@pytest.fixture(scope="module")
def pack():
    """The pack's nodes by id, the repo imported as a package the way ComfyUI imports a custom node folder."""
    return pack_nodes(REPO)


@pytest.fixture(scope="module")
def ps(pack):
    from onestep_nodes import proof_scale_models

    return proof_scale_models


@pytest.fixture(scope="module")
def model_set(tmp_path_factory):
    """Random stand-ins in a fresh models/onestep path: encoder, teacher, student (tiny UNets) and their diffusers nets."""
    d = tmp_path_factory.mktemp("proof_scale_models")
    folder_paths.add_model_folder_path("onestep", str(d))
    E.write_random_encoder(str(d / "enc.safetensors"), seed=0)
    teacher, _ = E.write_unet(str(d / "teacher.safetensors"), "teacher", TINY_NET, seed=3)
    student, _ = E.write_unet(str(d / "student.safetensors"), "student", TINY_NET, seed=4)
    return {"dir": d, "teacher": teacher.eval(), "student": student.eval()}


def test_clip_encodes_class_names_to_distinct_finite_conds(ps, model_set):
    path = str(model_set["dir"] / "enc.safetensors")
    clip = ps.load_text_encoder(path)  # core's text-encoder dtype (fp16 on CPU)
    conds = [ps.encode_prompt(clip, p) for p in PROMPTS]
    assert all(c.shape == (1, 77, 64) and torch.isfinite(c).all() for c in conds)
    fp16 = torch.cat(conds + [ps.encode_prompt(clip, "")]).float()
    assert E.check_distinct(fp16) > 0.1
    fp32 = E.context_table(ps.load_text_encoder(path, {"dtype": torch.float32}), PROMPTS)
    assert E.check_distinct(fp32) > 0.1
    assert torch.allclose(fp16, fp32, atol=2e-2), (fp16 - fp32).abs().max()
    assert ps.encode_prompt(clip, "(Sneaker:1.2)").shape == (1, 77, 64)  # core's prompt weighting works on it


def test_context_table_file(model_set, tmp_path):
    table = E.write_table(str(model_set["dir"] / "enc.safetensors"), str(tmp_path / "table.safetensors"))
    with safe_open(str(tmp_path / "table.safetensors"), "pt") as f:
        stored = f.get_tensor(E.TABLE_KEY)
        assert '"Sneaker"' in f.metadata()["prompts"]
    assert stored.shape == (11, 77, 64) and stored.dtype == torch.float32 and torch.equal(stored, table)


def test_encoder_file_errors_name_the_problem(ps, model_set):
    with pytest.raises(ps.ProofScaleFileError, match="is a UNet .*pick it as teacher or student"):
        ps.load_text_encoder(str(model_set["dir"] / "teacher.safetensors"))
    d = model_set["dir"]
    with pytest.raises(ps.ProofScaleFileError, match="not a one-step student: pick it as the teacher"):
        ps.load_model_set(str(d / "teacher.safetensors"), str(d / "teacher.safetensors"), str(d / "enc.safetensors"))
    with pytest.raises(ps.ProofScaleFileError, match="not a teacher: pick it as the student"):
        ps.load_model_set(str(d / "student.safetensors"), str(d / "student.safetensors"), str(d / "enc.safetensors"))
    with pytest.raises(ps.ProofScaleFileError, match="is a text encoder, not a UNet"):
        ps.load_model_set(str(d / "enc.safetensors"), str(d / "student.safetensors"), str(d / "enc.safetensors"))


def test_vae_round_trips_the_latent_grid(pack, ps):
    vae = ps.PixelGridVAE()
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (2, 1, 32, 32), generator=g).float() / 127.5 - 1.0  # Fashion-MNIST grey levels
    images = vae.decode(x)  # what core's VAE Decode calls
    assert images.shape == (2, 256, 256, 3)
    assert torch.allclose(images[:, ::8, ::8, 0], (x[:, 0] + 1) / 2, atol=1e-6)
    assert torch.equal(images[..., 0], images[..., 2]) and torch.equal(images[:, 7::8, 7::8], images[:, ::8, ::8])
    back = vae.encode(images[:, :, :, :3])  # what core's VAE Encode calls
    assert back.shape == x.shape and torch.allclose(back, x, atol=1e-6), (back - x).abs().max()
    assert torch.equal(((back + 1) * 127.5).round(), ((x + 1) * 127.5).round())
    assert vae.spacial_compression_decode() == vae.spacial_compression_encode() == 8 and vae.latent_channels == 1
    from onestep_nodes.fast_decode import OneStepVAEDecode

    assert torch.equal(OneStepVAEDecode.execute({"samples": x}, vae, "cuda graph")[0], images)  # no GPU here: falls back to core's decode


def _load(ps, model_set):
    d = model_set["dir"]
    return ps.load_model_set(str(d / "teacher.safetensors"), str(d / "student.safetensors"), str(d / "enc.safetensors"))


def test_teacher_samples_with_core_eps_as_diffusers_computes(ps, model_set):
    teacher, _, clip, _ = _load(ps, model_set)
    ms = teacher.get_model_object("model_sampling")
    assert isinstance(ms, ModelSamplingDiscrete) and isinstance(ms, EPS) and not hasattr(ms, "onestep_spec")
    z = torch.randn(2, 1, 32, 32)
    assert torch.allclose(ms.noise_scaling(ms.sigma_max, z, torch.zeros_like(z), True), z * torch.sqrt(1 + ms.sigma_max**2))  # core's, no override
    assert teacher.get_model_object("latent_format").latent_channels == 1
    from onestep_nodes.training_node import export_metadata

    assert export_metadata(teacher)[1] == "fmnist32"  # a node-trained student's file names the space Load One-Step Generator knows

    ctx = ps.encode_prompt(clip, "Sneaker")
    empty = comfy.sample.fix_empty_latent_channels(teacher, torch.zeros(2, 4, 32, 32))  # EmptyLatentImage 256×256
    assert empty.shape == (2, 1, 32, 32)
    noise = comfy.sample.prepare_noise(empty, 11)
    steps = 2
    out = comfy.sample.sample(teacher, noise, steps, 1.0, "euler", "normal", [[ctx, {}]], [[ctx, {}]], empty, seed=11, disable_pbar=True)

    # Reference: Euler in k-diffusion form on the diffusers UNet, x0 = x − σ·ε̂(x/sqrt(σ²+1), t(σ)), from x = sqrt(σ_max²+1)·z
    sigmas = comfy.samplers.calculate_sigmas(ms, "normal", steps).double()
    unet = model_set["teacher"]
    x = noise.double() * math.sqrt(1 + sigmas[0].item() ** 2)
    with torch.no_grad():
        for s, s_next in itertools.pairwise(sigmas):
            t = ms.timestep(s.float()).expand(2)
            eps = unet((x / torch.sqrt(1 + s**2)).float(), t, encoder_hidden_states=ctx.float().expand(2, -1, -1)).sample.double()
            denoised = x - s * eps
            x = x + (x - denoised) / s * (s_next - s)
    assert out.shape == (2, 1, 32, 32)
    assert torch.allclose(out.double(), x, atol=2e-4 * x.abs().max().item()), (out.double() - x).abs().max()


def test_student_generates_as_diffusers_computes(pack, ps, model_set):
    _, student, clip, _ = _load(ps, model_set)
    ms = student.get_model_object("model_sampling")
    t = int(ms.onestep_spec.timestep)
    assert t == 625  # the shipped student: ε at t=625 (issue 14's parameterisation study)
    ctx = ps.encode_prompt(clip, "Sneaker")
    out = pack["OneStepGenerate"].execute(student, [[ctx, {}]], 7, 256, 256, 2)[0]["samples"].double()
    assert out.shape == (2, 1, 32, 32)

    z = comfy.sample.prepare_noise(torch.zeros(2, 1, 32, 32), 7).double()
    a = float(torch.cumprod(1 - torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2, 0)[t])
    x_in = math.sqrt(1 - a) * z  # sigma_z: the UNet sees sqrt(1 − ᾱ)·z
    with torch.no_grad():
        eps = model_set["student"](x_in.float(), torch.full((2,), float(t)), encoder_hidden_states=ctx.float().expand(2, -1, -1)).sample.double()
    ref = (x_in - math.sqrt(1 - a) * eps) / math.sqrt(a)
    assert torch.allclose(out, ref, atol=2e-4 * ref.abs().max().item()), (out - ref).abs().max()


def test_teacher_metadata_is_checked(ps, model_set, tmp_path):
    from onestep.format import load_generator, save_generator

    sd, _ = load_generator(str(model_set["dir"] / "teacher.safetensors"))
    save_generator(str(tmp_path / "flow_teacher.safetensors"), sd, E.unet_metadata("teacher", TINY_NET, prediction="flow", timestep=1000))
    from onestep_nodes import generator_model as gm
    with pytest.raises(ValueError, match="teacher file must predict one of eps, v, x0"):  # the pack's GeneratorFileError
        gm.load_generator_model(str(tmp_path / "flow_teacher.safetensors"))


# ---------------------------------------------------------------- shipping a finished run as the default set
def _finished_run(root, enc: str) -> tuple[str, str]:
    """A pipeline work folder as the report leaves it (stand-in weights, the records the ship tool reads)."""
    import json

    from proof_scale.checkpoint import digest

    work = root / "work"
    (work / "generators").mkdir(parents=True)
    (work / "distill" / "diffusion2gan").mkdir(parents=True)
    table = E.write_table(enc, str(root / "context.safetensors"))
    E.write_unet(str(work / "generators" / "teacher.safetensors"), "teacher", TINY_NET, seed=3)
    E.write_unet(str(work / "generators" / "diffusion2gan.safetensors"), "student", TINY_NET, seed=4)
    row = {"fd": 1.0, "precision": 0.5, "recall": 0.5, "class_acc": 0.9, "nfe": 1, "seconds": 0.1}
    records = {
        "teacher.json": {"context_sha256": digest({"context": table}), "steps_done": 10, "seconds": 1.0, "parameters": 1, "command": "c"},
        "teacher_eval.json": {"row": {**row, "nfe": 100}, "steps": 50, "cfg": 1.5, "sampler": "euler", "command": "c"},
        "distill/diffusion2gan/result.json": {"row": row, "generator": "runs/x/generators/diffusion2gan.safetensors", "command": "c", "device": "d"},
    }
    for rel, obj in records.items():
        (work / rel).write_text(json.dumps(obj))
    return str(work), str(root / "context.safetensors")


def test_ship_a_finished_run_and_install_it_as_the_default_set(ps, model_set, tmp_path):
    from onestep.atomic import file_sha256
    from onestep.format import load_generator
    from tools import ship_proof_scale as S
    from tools.build_default_models import install_proof_scale

    enc = str(model_set["dir"] / "enc.safetensors")
    work, ctx = _finished_run(tmp_path, enc)
    dest = str(tmp_path / "default")
    assert install_proof_scale(str(tmp_path / "models"), dest) == {}  # nothing shipped yet: nothing installed
    prov = S.ship(work, ctx, enc, dest)
    assert set(prov["files"]) == set(S.FILES.values()) and prov["rows"]["teacher"]["cfg"] == 1.5
    for role in ("teacher", "student"):
        src_sd, src_meta = load_generator(os.path.join(work, "generators", "teacher.safetensors" if role == "teacher" else "diffusion2gan.safetensors"))
        sd, meta = load_generator(os.path.join(dest, S.FILES[role]))
        assert all(v.dtype == torch.float16 for v in sd.values()) and set(sd) == set(src_sd)
        assert max((sd[k].float() - src_sd[k]).abs().max().item() for k in sd) < 1e-2
        assert meta.method == src_meta.method and "fp16 copy" in meta.notes["shipped"]
    assert file_sha256(os.path.join(dest, S.FILES["text_encoder"])) == file_sha256(enc)
    installed = install_proof_scale(str(tmp_path / "models"), dest)
    assert set(installed) == {"teacher", "student", "text_encoder"}
    teacher, student, clip, vae = ps.load_model_set(installed["teacher"], installed["student"], installed["text_encoder"])
    assert ps.clip_width(clip) == 64
    # a shipped file that no longer matches its provenance is named, not silently installed
    with open(os.path.join(dest, S.FILES["student"]), "r+b") as f:
        f.seek(-4, os.SEEK_END)
        f.write(b"\0\0\0\0")
    with pytest.raises(S.ShipError, match="differs from PROVENANCE.json"):
        S.shipped_set(dest)


def test_ship_refuses_a_chain_that_does_not_fit(model_set, tmp_path):
    from tools import ship_proof_scale as S

    enc = str(model_set["dir"] / "enc.safetensors")
    work, ctx = _finished_run(tmp_path, enc)
    other_enc = str(tmp_path / "other-enc.safetensors")
    E.write_random_encoder(other_enc, seed=1)
    with pytest.raises(S.ShipError, match="not the encoder the context table was made with"):
        S.check_run(work, ctx, other_enc, "diffusion2gan")
    other_ctx = str(tmp_path / "other-context.safetensors")
    E.write_table(other_enc, other_ctx)
    with pytest.raises(S.ShipError, match="not the context table the teacher trained on"):
        S.check_run(work, other_ctx, other_enc, "diffusion2gan")
    with pytest.raises(S.ShipError, match="is missing"):
        S.check_run(work, ctx, enc, "regression_mse")
    assert S.main([work, ctx, other_enc, "--dest", str(tmp_path / "d")]) == 2 and not os.path.exists(tmp_path / "d" / S.PROVENANCE)


def test_ship_only_a_scored_student_from_weights_that_came_back_from_the_gpu(model_set, tmp_path):
    import json

    from safetensors.torch import save_file

    from onestep.format import load_generator
    from proof_scale.teacher_import import import_unet
    from tools import ship_proof_scale as S

    enc = str(model_set["dir"] / "enc.safetensors")
    work, ctx = _finished_run(tmp_path, enc)
    dest = str(tmp_path / "default")
    S.ship(work, ctx, enc, dest)
    before = json.loads((tmp_path / "default" / S.PROVENANCE).read_text())
    teacher_bytes = (tmp_path / "default" / S.FILES["teacher"]).read_bytes()
    unet, _, _ = import_unet(os.path.join(dest, S.FILES["student"]))
    native = {k: (v + 0.01).half().contiguous() for k, v in unet.state_dict().items()}  # "trained further"
    keys = sorted(native)
    a, b = str(tmp_path / "best_a.safetensors"), str(tmp_path / "best_b.safetensors")
    save_file({k: native[k] for k in keys[:len(keys) // 2]}, a)
    save_file({k: native[k] for k in keys[len(keys) // 2:]}, b)
    score = tmp_path / "score.json"
    row = {"fd": 0.5, "precision": 0.6, "recall": 0.6, "class_acc": 0.95, "seeds": [1000000], "precision_mode": "float32"}
    score.write_text(json.dumps({**row, "command": "python -m benchmarks.score_generator --weights x/best_other.safetensors"}))
    argv = ["--student-weights", a, b, "--score", str(score), "--row", "gan_stage", "--steps", "3000", "--source", "GAN stage", "--dest", dest]
    assert S.main(argv) == 2  # a score of other files is refused, nothing written
    assert json.loads((tmp_path / "default" / S.PROVENANCE).read_text()) == before
    score.write_text(json.dumps({**row, "command": f"python -m benchmarks.score_generator --weights {a} {b}"}))
    assert S.main(argv) == 0
    prov = json.loads((tmp_path / "default" / S.PROVENANCE).read_text())
    assert set(prov["rows"]) == {"teacher", "gan_stage"} and prov["rows"]["gan_stage"]["fd"] == 0.5 and prov["rows"]["teacher"] == before["rows"]["teacher"]
    assert prov["commands"][-1].endswith(f"{a} {b}") and set(S.shipped_set(dest)) == {"teacher", "student", "text_encoder"}
    assert (tmp_path / "default" / S.FILES["teacher"]).read_bytes() == teacher_bytes
    shipped = import_unet(os.path.join(dest, S.FILES["student"]))[0].state_dict()
    assert all(torch.equal(shipped[k].half(), native[k]) for k in native)
    _, meta = load_generator(os.path.join(dest, S.FILES["student"]))
    assert (meta.training_steps, meta.source, meta.notes["proof_scale_row"]) == (3000, "GAN stage", "gan_stage")
    started = meta.notes["started_from"]  # the shipped student's source: these weights were trained on from it
    assert S.main([*argv, "--started-from", "run 10's student"]) == 0  # weights from another line of training say so
    assert load_generator(os.path.join(dest, S.FILES["student"]))[1].notes["started_from"] == "run 10's student" != started
    prov = json.loads((tmp_path / "default" / S.PROVENANCE).read_text())
    # weights of another UNet are named, not shipped
    save_file({k: v for k, v in native.items() if k != keys[0]}, b)
    save_file({k: native[k] for k in keys[:1]} | {"extra.weight": torch.zeros(1)}, a)
    assert S.main(argv) == 2 and json.loads((tmp_path / "default" / S.PROVENANCE).read_text()) == prov
    save_file({k: native[k] for k in keys[1:len(keys) // 2]}, a)  # one tensor short
    save_file({k: native[k] for k in keys[len(keys) // 2:]}, b)
    assert S.main(argv) == 2 and json.loads((tmp_path / "default" / S.PROVENANCE).read_text()) == prov
    # a later stage of another method, scored by a retrained evaluator: the file names the method, the teacher row
    # is replaced by the one that evaluator scored; a teacher record without a row, or a teacher "method", is refused
    save_file({k: native[k] for k in keys[:len(keys) // 2]}, a)
    save_file({k: native[k] for k in keys[len(keys) // 2:]}, b)
    teacher_eval = tmp_path / "teacher_eval.json"
    teacher_eval.write_text(json.dumps({"command": "python -m proof_scale.parallel --work W", "cfg": 1.5}))
    sid = [*argv[:argv.index("--row") + 1], "sid_stage", *argv[argv.index("--row") + 2:], "--method", "sid-lsg", "--teacher-row", str(teacher_eval)]
    assert S.main(sid) == 2 and json.loads((tmp_path / "default" / S.PROVENANCE).read_text()) == prov
    teacher_eval.write_text(json.dumps({"row": {"fd": 0.25, "seeds": [1000000]}, "command": "python -m proof_scale.parallel --work W"}))
    assert S.main([*sid[:-4], "--method", "teacher", *sid[-2:]]) == 2
    assert S.main(sid) == 0
    prov = json.loads((tmp_path / "default" / S.PROVENANCE).read_text())
    assert prov["rows"] == {"teacher": {"fd": 0.25, "seeds": [1000000]}, "sid_stage": {k: v for k, v in row.items()}}
    assert prov["commands"][-2:] == ["python -m proof_scale.parallel --work W", f"python -m benchmarks.score_generator --weights {a} {b}"]
    assert load_generator(os.path.join(dest, S.FILES["student"]))[1].method == "sid-lsg"
