"""Files written by the reflow and InstaFlow methods through the pack's ComfyUI loader (onestep_nodes/generator_model.py), in
process with the real ComfyUI modules: core's KSampler with Euler and the "simple" scheduler on the 2-rectified flow
equals k Euler steps x ← x + v/k at model times 1000·(1 − i/k) on the raw UNet (CFG mixing velocities), and
One-Step Generate on either file equals x0 = z + v(z, 1000)."""
import pytest
import torch
from test_comfy_inprocess import pack  # noqa: F401  (fixture: the pack's nodes as ComfyUI registers them)
from test_core_reflow import FlowPairs, reflow_config
from test_core_training_fixtures import tiny_unet

import comfy.sample
import folder_paths

from training.session import TrainingSession


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A 2-RF file and an InstaFlow file, each after two training steps on the synthetic pairs."""
    d = tmp_path_factory.mktemp("flow_models")
    folder_paths.add_model_folder_path("onestep", str(d))
    out = {}
    for method, file_method in (("reflow", "2-rectified-flow"), ("instaflow", "instaflow")):
        session = TrainingSession(tiny_unet(), reflow_config(method=method), FlowPairs(), None)
        session.run(2)
        session.export(str(d / f"{file_method}.safetensors"), "custom", "sd15", teacher_hash="ef" * 8)
        assert session.trainer.method.file_method == file_method
        unet = session.trainer.unet
        unet.load_state_dict(session.trainer.generator_state_dict(ema=True, layout="native"))
        out[file_method] = (str(d / f"{file_method}.safetensors"), unet.eval())
    return out


def _velocity(model, x, tau, ctx):
    with torch.no_grad():
        return model.model.diffusion_model(x, torch.full((x.shape[0],), tau), context=ctx.expand(x.shape[0], -1, -1))


@pytest.mark.parametrize("steps,cfg", [(1, 1.0), (2, 1.0), (4, 1.0), (4, 2.0)])
def test_ksampler_euler_simple_is_the_flows_euler(pack, files, steps, cfg):  # noqa: F811
    from onestep_nodes import generator_model as gm
    path, trained = files["2-rectified-flow"]
    model = gm.load_generator_model(path)
    data = FlowPairs()
    ctx, null = data[1]["context"][None], data.negative()["context"][None]
    z = comfy.sample.prepare_noise(torch.zeros(2, 4, 16, 16), 5)
    out = comfy.sample.sample(model, z, steps, cfg, "euler", "simple", [[ctx, {}]], [[null, {}]], torch.zeros(2, 4, 16, 16), seed=5)
    out = out.double() * model.get_model_object("latent_format").scale_factor  # LATENT units → the UNet's x0 space

    x = z.clone()
    for i in range(steps):  # InstaFlow's pipeline: x ← x + v/k at τ = 1000·(1 − i/k), v = v_u + cfg·(v_c − v_u)
        tau = 1000.0 * (1 - i / steps)
        v = _velocity(model, x, tau, ctx)
        if cfg != 1.0:
            v_u = _velocity(model, x, tau, null)
            v = v_u + cfg * (v - v_u)
        x = x + v / steps
    assert torch.allclose(out, x.double(), atol=1e-4 * x.abs().max().item()), (out - x).abs().max()
    with torch.no_grad():  # the file holds the trained EMA UNet: ComfyUI's ldm UNet computes what the trainer's did
        want = trained(z, torch.full((2,), 750.0), ctx.expand(2, -1, -1))
    assert torch.allclose(_velocity(model, z, 750.0, ctx), want, atol=1e-4)


@pytest.mark.parametrize("file_method", ["2-rectified-flow", "instaflow"])
def test_one_step_generate_is_z_plus_v(pack, files, file_method):  # noqa: F811
    path, _ = files[file_method]
    model = pack["OneStepLoadGenerator"].execute(path.rsplit("/", 1)[-1])[0]
    ctx = FlowPairs()[2]["context"][None]
    out = pack["OneStepGenerate"].execute(model, [[ctx, {}]], 7, 128, 128, 2)[0]["samples"].double()
    out = out * model.get_model_object("latent_format").scale_factor
    z = comfy.sample.prepare_noise(torch.zeros(2, 4, 16, 16), 7)
    ref = z + _velocity(model, z, 1000.0, ctx)
    assert torch.allclose(out, ref.double(), atol=1e-4 * ref.abs().max().item()), (out - ref).abs().max()
