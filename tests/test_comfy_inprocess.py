"""The ComfyUI adapters in-process with the real ComfyUI modules (the host tree on PYTHONPATH), no server:
every parameterization through the real node code against its reference formula on the raw UNet."""
import math

import pytest
import torch

from comfy_host import REPO, pack_nodes
from test_core_parameterization import alpha_bar

try:
    import comfy.cli_args as comfy_cli_args
except ImportError as e:  # a missing host is a failure, not a skip
    raise ImportError("run with the ComfyUI tree on PYTHONPATH (scripts/test.sh does)") from e
comfy_cli_args.args.cpu = True

import comfy.sample  # noqa: E402
import folder_paths  # noqa: E402

from tools import fixtures as F  # noqa: E402


@pytest.fixture(scope="module")
def pack():
    """The pack's nodes by id, the repo imported as a package the way ComfyUI imports a custom node folder."""
    return pack_nodes(REPO)


@pytest.fixture(scope="module")
def gen_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("onestep_models")
    folder_paths.add_model_folder_path("onestep", str(d))
    return d


def test_failing_node_module_is_isolated(pack, caplog):
    import onestep_nodes

    classes = onestep_nodes.load_node_modules(("load_generator", "no_such_module", "sampler"))
    assert [c.__name__ for c in classes] == ["OneStepLoadGenerator", "OneStepSampler", "OneStepSigmas"]
    assert "no_such_module" in caplog.text and "failed to import" in caplog.text


def test_a_node_whose_schema_fails_is_left_out_alone(pack, caplog, monkeypatch):
    """ComfyUI builds the schemas of a V3 pack's node list in one loop, so one raising there would lose the whole pack:
    load_node_modules builds each first and leaves out only the node that fails."""
    import sys
    import types

    import onestep_nodes
    from comfy_api.latest import io

    class OneStepBrokenSchema(io.ComfyNode):
        @classmethod
        def define_schema(cls):
            raise RuntimeError("simulated: a schema using a type this ComfyUI lacks")

        @classmethod
        def execute(cls):
            return io.NodeOutput()

    module = types.ModuleType("onestep_nodes.broken_schema")
    module.NODES = [OneStepBrokenSchema, pack["OneStepSampler"]]
    monkeypatch.setitem(sys.modules, "onestep_nodes.broken_schema", module)
    classes = onestep_nodes.load_node_modules(("load_generator", "broken_schema"))
    assert [c.__name__ for c in classes] == ["OneStepLoadGenerator", "OneStepSampler"]
    assert "OneStepBrokenSchema" in caplog.text and "simulated" in caplog.text


def test_node_ids_are_the_class_names_and_every_node_is_v3(pack):
    """Saved workflows name nodes by id: the ids stay the V1 class names, and every node is an io.ComfyNode."""
    from comfy_api.latest import io

    assert len(pack) == 13
    for node_id, cls in pack.items():
        assert issubclass(cls, io.ComfyNode) and cls.__name__ == node_id and node_id.startswith("OneStep")


CASES = {  # name → (metadata, reference x0 from ε̂/v̂/x̂ = unet(x_in, t) and noise z)
    "eps_t999_sigma_z": (dict(), "eps", 999, lambda z, a: math.sqrt(1 - a) * z),
    "eps_t625_sid": (dict(method="sid-lsg", timestep=625), "eps", 625, lambda z, a: math.sqrt(1 - a) * z),
    "eps_t399_raw_z": (dict(method="dmd2", timestep=399, input_convention="raw_z"), "eps", 399, lambda z, a: z),
    "v_t999": (dict(method="other", prediction="v"), "v", 999, lambda z, a: math.sqrt(1 - a) * z),
    "x0_t999": (dict(method="other", prediction="x0"), "x0", 999, lambda z, a: math.sqrt(1 - a) * z),
    "flow": (dict(method="instaflow", prediction="flow", timestep=1000), "flow", 1000, lambda z, a: z),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_generate_matches_reference_formula(pack, gen_dir, case):
    meta, pred, t, unet_input = CASES[case]
    name = f"{case}.safetensors"
    F.write_generator(str(gen_dir / name), **meta)
    model = pack["OneStepLoadGenerator"].execute(name)[0]
    ctx = torch.randn(1, 77, 768, generator=torch.Generator().manual_seed(1))
    out = pack["OneStepGenerate"].execute(model, [[ctx, {}]], 7, 32, 32, 2)[0]["samples"].double()
    out = out * model.get_model_object("latent_format").scale_factor  # LATENTs are in VAE units, the UNet's x0 is scaled

    z = comfy.sample.prepare_noise(torch.zeros(2, 4, 4, 4), 7).double()
    a = alpha_bar(min(t, 999))
    x_in = unet_input(z, a)
    unet = model.model.diffusion_model
    with torch.no_grad():
        raw = unet(x_in.float(), torch.full((2,), float(t)), context=ctx.repeat(2, 1, 1)).double()
    ref = {
        "eps": lambda: (x_in - math.sqrt(1 - a) * raw) / math.sqrt(a),
        "v": lambda: math.sqrt(a) * x_in - math.sqrt(1 - a) * raw,
        "x0": lambda: raw,
        "flow": lambda: x_in + raw,  # InstaFlow: x0 = z + v
    }[pred]()
    scale = ref.abs().max().item()
    assert torch.allclose(out, ref, atol=2e-4 * scale, rtol=1e-4), (out - ref).abs().max()


@pytest.mark.parametrize("case", sorted(CASES))
def test_denoise_starts_where_it_did_and_generate_is_the_cores_denoiser_there(pack, gen_dir, case):
    """denoise < 1 (a start latent): One-Step Sigmas gives bit for bit the σ that ComfyUI's model_sampling gave before the
    rule moved to the core (onestep.img2img: σ(t(σ_t)·denoise)), and One-Step Generate's latent is the core's denoiser at
    that σ on the re-noised start latent (the formulas the A1111/Forge adapter runs)."""
    from onestep.img2img import start_sigma, timestep_at

    name = f"img2img_{case}.safetensors"
    F.write_generator(str(gen_dir / name), **CASES[case][0])
    model = pack["OneStepLoadGenerator"].execute(name)[0]
    ms = model.get_model_object("model_sampling")
    sigma_t = float(ms.sigma(torch.tensor(float(ms.onestep_spec.timestep))))  # the removed code, on core's model_sampling
    for d in [1.0, 0.99, 0.75, 0.6, 0.5, 0.33, 0.2, 0.01]:
        before = sigma_t if d >= 1.0 else float(ms.sigma(ms.timestep(torch.tensor(sigma_t)) * d))
        assert torch.equal(pack["OneStepSigmas"].execute(model, d)[0], torch.tensor([before, 0.0])), (d, before)

    spec, d = ms.onestep_spec, 0.5
    start = torch.randn(1, 4, 4, 4, generator=torch.Generator().manual_seed(2))
    ctx = torch.randn(1, 77, 768, generator=torch.Generator().manual_seed(1))
    out = pack["OneStepGenerate"].execute(model, [[ctx, {}]], 7, 32, 32, 1, {"samples": start}, d)[0]["samples"]
    fmt = model.get_model_object("latent_format")
    sigma = start_sigma(spec, d)
    x = spec.noise_scaling_at(sigma, comfy.sample.prepare_noise(start, 7), fmt.process_in(start))
    with torch.no_grad():
        raw = model.model.diffusion_model(x * spec.input_scale_at(sigma), torch.tensor([timestep_at(spec, sigma)]), context=ctx)
    ref = spec.denoised_at(raw, x, sigma)
    got = fmt.process_in(out)  # LATENTs are in VAE units
    assert torch.allclose(got, ref, atol=2e-4 * ref.abs().max().item(), rtol=1e-4), (got - ref).abs().max()


def test_imported_weights_compute_what_diffusers_computes(pack, gen_dir, tmp_path):
    import diffusers_fixtures

    unet = diffusers_fixtures.tiny_unet(seed=3)
    src = diffusers_fixtures.dmd2_state_dict(str(tmp_path / "dmd2.bin"), unet)
    from onestep.importers import IMPORTERS

    IMPORTERS["dmd2"](src, str(gen_dir / "dmd2_tiny.safetensors"))
    model = pack["OneStepLoadGenerator"].execute("dmd2_tiny.safetensors")[0]
    x = torch.randn(2, 4, 8, 8)
    ctx = torch.randn(2, 77, 768)
    t = torch.tensor([999.0, 399.0])
    with torch.no_grad():
        ours = model.model.diffusion_model(x, t, context=ctx)
        ref = unet(x, t, encoder_hidden_states=ctx).sample
    assert torch.allclose(ours, ref, atol=1e-4), (ours - ref).abs().max()


def test_fast_path_weights_key_tracks_replaced_weights(pack):
    from onestep_nodes import fast_path
    net = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Sequential(torch.nn.Linear(4, 2)))
    k = fast_path.weights_key(net)
    assert fast_path.weights_key(net) == k
    with torch.no_grad():
        net[0].weight.mul_(2)  # in-place patch: the graph reads the new values from the same memory
    assert fast_path.weights_key(net) == k
    net[1][0].weight = torch.nn.Parameter(net[1][0].weight.detach().clone())  # replaced (LoRA set_attr_param)
    assert fast_path.weights_key(net) != k


def test_fast_path_is_off_where_core_must_run(pack, gen_dir):
    from onestep_nodes import fast_path
    F.write_generator(str(gen_dir / "fp.safetensors"))
    model = pack["OneStepLoadGenerator"].execute("fp.safetensors")[0]
    ctx = torch.randn(1, 77, 768)
    assert fast_path.ineligible_reason(model, [[ctx, {}]], None) == "not a CUDA device"  # this machine has no GPU
    assert fast_path.per_call_reason(model, [[ctx, {"pooled_output": ctx[:, 0]}]], None) is None
    assert fast_path.per_call_reason(model, [[ctx, {"control": object()}]], None) == "conditioning carries ['control']"
    assert fast_path.per_call_reason(model, [[ctx, {}], [ctx, {}]], None) == "several conditionings"
    assert fast_path.per_call_reason(model, [[ctx, {}]], torch.ones(1, 1, 4, 4)) == "noise mask"
    wrapped = model.clone()
    wrapped.set_model_unet_function_wrapper(lambda apply, args: apply(args["input"], args["timestep"], **args["c"]))
    assert fast_path.per_call_reason(wrapped, [[ctx, {}]], None) == "model wrappers"


def test_one_step_output_conv_keeps_float32_when_core_stores_bf16(pack, gen_dir):
    """With core's --bf16-unet the generator's trunk is stored in bf16, but its last convolution keeps the file's
    float32 weights and float32 arithmetic: ε̂ is never rounded to bf16 before x0 = (x − σ·ε̂)/α multiplies that
    rounding by σ/α (14.6 here, t=999). The plain teacher path is left to core."""
    from onestep.format import load_generator

    path = gen_dir / "bf16_head.safetensors"
    F.write_generator(str(path))
    comfy_cli_args.args.bf16_unet = True
    try:
        model = pack["OneStepLoadGenerator"].execute(path.name)[0]
    finally:
        comfy_cli_args.args.bf16_unet = False
    unet = model.model.diffusion_model
    conv = unet.out[-1]
    assert unet.input_blocks[0][0].weight.dtype == torch.bfloat16  # core did store the trunk in bf16
    sd, _ = load_generator(str(path))
    assert conv.weight.dtype == torch.float32 and torch.equal(conv.weight, sd["out.2.weight"]) and torch.equal(conv.bias, sd["out.2.bias"])
    x, ctx = torch.randn(2, 4, 4, 4), torch.randn(2, 77, 768)
    with torch.no_grad():
        eps = unet(x.bfloat16(), torch.full((2,), 999.0), context=ctx.bfloat16())
    assert eps.dtype == torch.float32 and (eps != eps.bfloat16().float()).float().mean() > 0.9  # not rounded to bf16
    out = pack["OneStepGenerate"].execute(model, [[ctx[:1], {}]], 7, 32, 32, 2)[0]["samples"]
    assert out.dtype == torch.float32 and torch.isfinite(out).all()


SDXL_CASES = {  # name → (metadata, timestep, UNet input from noise z and ᾱ_t)
    "dmd2_t399_raw_z": (dict(method="dmd2", timestep=399, input_convention="raw_z"), 399, lambda z, a: z),
    "eps_t999_sigma_z": (dict(), 999, lambda z, a: math.sqrt(1 - a) * z),
}


@pytest.mark.parametrize("case", sorted(SDXL_CASES))
def test_sdxl_generator_takes_pooled_and_size_conditioning(pack, gen_dir, case):
    """An SDXL-family generator (reduced width, SDXL's conditioning) through One-Step Generate equals the one-step
    formula on the raw UNet fed with core's own SDXL label embedding of the pooled text and the image size."""
    meta, t, unet_input = SDXL_CASES[case]
    name = f"sdxl_{case}.safetensors"
    F.write_generator(str(gen_dir / name), F.TINY_SDXL_UNET, base="sdxl", latent_format="sdxl",
                      unet_config={k: F.TINY_SDXL_UNET[k] for k in ("num_heads", "num_head_channels")}, **meta)
    model = pack["OneStepLoadGenerator"].execute(name)[0]
    g = torch.Generator().manual_seed(2)
    ctx, pooled = torch.randn(1, 77, 2048, generator=g), torch.randn(1, 1280, generator=g)
    size = {"width": 1024, "height": 1024, "crop_w": 0, "crop_h": 0, "target_width": 1024, "target_height": 1024}
    positive = [[ctx, {"pooled_output": pooled, **size}]]
    out = pack["OneStepGenerate"].execute(model, positive, 5, 64, 64, 2)[0]["samples"].double()
    out = out * model.get_model_object("latent_format").scale_factor
    with pytest.raises(ValueError, match="pooled"):  # SDXL without the pooled text is refused by name
        pack["OneStepGenerate"].execute(model, [[ctx, {}]], 5, 64, 64, 2)

    z = comfy.sample.prepare_noise(torch.zeros(2, 4, 8, 8), 5).double()
    a = alpha_bar(t)
    x_in = unet_input(z, a)
    y = model.model.encode_adm(pooled_output=pooled, **size).repeat(2, 1)  # core's SDXL label embedding
    with torch.no_grad():
        eps = model.model.diffusion_model(x_in.float(), torch.full((2,), float(t)), context=ctx.repeat(2, 1, 1), y=y).double()
    ref = (x_in - math.sqrt(1 - a) * eps) / math.sqrt(a)
    assert torch.allclose(out, ref, atol=2e-4 * ref.abs().max().item(), rtol=1e-4), (out - ref).abs().max()
    # the size conditioning reaches the UNet: another size gives another image
    other = pack["OneStepGenerate"].execute(model, [[ctx, {"pooled_output": pooled, **size, "width": 512, "target_width": 512}]], 5, 64, 64, 2)[0]
    assert not torch.allclose(other["samples"].double() * model.get_model_object("latent_format").scale_factor, out)


def test_latent_space_table_matches_comfyuis_latent_formats():
    """onestep/latent_spaces.py holds ComfyUI's numbers (the pack's own fmnist32 is its class in generator_model.py)."""
    import comfy.latent_formats

    from onestep.latent_spaces import LATENT_SPACES
    from onestep_nodes.generator_model import LATENT_FORMATS

    for space in LATENT_SPACES.values():
        fmt = LATENT_FORMATS[space.name]() if space.name in LATENT_FORMATS else getattr(comfy.latent_formats, space.comfy_format)()
        assert type(fmt).__name__ == space.comfy_format
        assert (fmt.latent_channels, fmt.scale_factor, getattr(fmt, "shift_factor", None) or 0.0) == (space.channels, space.scale, space.shift), space
