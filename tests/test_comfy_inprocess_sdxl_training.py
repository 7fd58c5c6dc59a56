"""Pairs and Diffusion2GAN on an SDXL-family teacher, in process with ComfyUI's real classes: a reduced-width SDXL UNet
(tools/fixtures.py TINY_SDXL_UNET, loaded as a teacher file) and core's SDXL text encoder (CLIP-L + OpenCLIP-G at full
width, 3 layers each). Collect Teacher Pairs stores the pooled text of every prompt and of the negative, and its latents
are core KSampler's; the trainer's ComfyUI adapter (onestep_nodes/comfy_unet.py) feeds the pooled text and the image
size (from the latent's shape, as core's sampling does) to G and to D; Train Diffusion2GAN (full and LoRA), Train SiD-LSG
and Train Rectified Flow write SDXL-family files that One-Step Generate runs with the teacher's attention layout."""
import functools
import math

import pytest
import torch
from safetensors.torch import load_file
from test_comfy_inprocess import pack  # noqa: F401  (fixture: the pack's nodes as ComfyUI registers them)

import comfy.sample
import comfy.samplers
import folder_paths
import nodes

from onestep_nodes.inputs import MSE
from tools import fixtures as F

PROMPTS = ["a red fox in the snow", "(a blue:1.3) bird", "x"]
NEGATIVE = "blurry"
WIDTH, HEIGHT = 64, 80  # non-square: the size embedding's height and width must not be swapped
SEED, STEPS, CFG = 10, 3, 5.0
HEADS = {k: F.TINY_SDXL_UNET[k] for k in ("num_heads", "num_head_channels")}

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: tiny convolutions run faster on one core


@pytest.fixture(scope="module")
def sdxl(pack, tmp_path_factory):  # noqa: F811
    """The teacher MODEL and CLIP, model folders in a temporary directory, and a 3-pair dataset collected by the node."""
    from onestep_nodes import generator_model as gm

    root = tmp_path_factory.mktemp("sdxl_models")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(folder_paths, "models_dir", str(root))
        for name, exts in (("onestep", {".safetensors"}), ("onestep_pairs", {".json"}), ("loras", {".safetensors"})):
            (root / name).mkdir()
            mp.setitem(folder_paths.folder_names_and_paths, name, ([str(root / name)], exts))
        F.write_generator(str(root / "teacher.safetensors"), F.TINY_SDXL_UNET, seed=3, method="teacher", base="sdxl",
                          latent_format="sdxl", unet_config=HEADS)
        model = gm.load_generator_model(str(root / "teacher.safetensors"))
        clip = F.sdxl_clip()
        folder = pack["OneStepCollectTeacherPairs"].execute(
            model, clip, "\n".join(PROMPTS), "", "prompt", NEGATIVE, "euler", "normal", STEPS, CFG, SEED, 3, WIDTH, HEIGHT, 3, 3, "sdxl-pairs")[0]
        yield {"root": root, "model": model, "clip": clip, "folder": folder}


def encode(clip, text):
    return nodes.CLIPTextEncode().encode(clip, text)[0]  # [[cond [1, 77, 2048], {"pooled_output": [1, 1280]}]]


def test_pairs_store_pooled_text_and_equal_ksampler(sdxl):
    """Every prompt's and the negative's cond and pooled text are CLIP Text Encode's; a recorded latent is KSampler's."""
    shard = load_file(f"{sdxl['folder']}/shard-000000.safetensors")
    assert shard["latent"].shape == (3, 4, HEIGHT // 8, WIDTH // 8) and shard["seed"].tolist() == [10, 11, 12]
    for key, text in [*((f"{j}", p) for j, p in enumerate(PROMPTS)), ("negative", NEGATIVE)]:
        (cond, extra), = encode(sdxl["clip"], text)
        prefix = "negative." if key == "negative" else ""
        suffix = "" if key == "negative" else f".{key}"
        stored_cond, stored_pooled = shard[f"{prefix}cond{suffix}"], shard[f"{prefix}pooled{suffix}"]
        assert stored_pooled.shape == (1, 1280) and stored_cond.shape == (1, 77, 2048), key
        assert torch.allclose(stored_pooled, extra["pooled_output"].float(), atol=1e-5), key
        assert torch.allclose(stored_cond, cond.float(), atol=1e-5), key
    # item 1 (seed 11, prompt 1) replayed alone in core's KSampler: batch 3 vs batch 1 changes float rounding only
    empty = {"samples": torch.zeros(1, 4, HEIGHT // 8, WIDTH // 8)}
    replay = nodes.KSampler().sample(sdxl["model"], 11, STEPS, CFG, "euler", "normal", encode(sdxl["clip"], PROMPTS[1]),
                                     encode(sdxl["clip"], NEGATIVE), empty)[0]["samples"][0]
    scale = shard["latent"][1].abs().max()
    assert (replay - shard["latent"][1]).abs().max() <= 1e-5 * scale, ((replay - shard["latent"][1]).abs().max(), scale)
    assert (replay - shard["latent"][0]).abs().max() > 0.1 * scale  # another seed and prompt are far away
    # the pooled text reaches the teacher: the same seed and prompt with another pooled vector give another latent
    (cond, extra), = encode(sdxl["clip"], PROMPTS[1])
    other = nodes.KSampler().sample(sdxl["model"], 11, STEPS, CFG, "euler", "normal", [[cond, {"pooled_output": extra["pooled_output"].flip(-1)}]],
                                    encode(sdxl["clip"], NEGATIVE), empty)[0]["samples"][0]
    assert (other - replay).abs().max() > 1e-3 * scale


def adapter(model):
    from onestep_nodes.comfy_unet import ComfyUNet
    with torch.inference_mode(False):
        return ComfyUNet.from_model(model, device=torch.device("cpu"))


def test_adapter_feeds_pooled_and_latent_size_as_core_and_to_d(sdxl):
    """G's forward equals the raw UNet fed core's own label embedding for that latent (comfy.samplers.encode_model_conds:
    height, width from the latent's shape), and changing the pooled text changes both G's output and D's logits."""
    from training.config import TrainConfig
    from training.methods.diffusion2gan import build_discriminator

    model = sdxl["model"]
    net = adapter(model)
    assert net.info.pooled_dim == 1280 and net.info.context_dim == 2048
    shard = load_file(f"{sdxl['folder']}/shard-000000.safetensors")
    ctx, pooled = shard["cond.0"].repeat(2, 1, 1), torch.cat([shard["pooled.0"], shard["pooled.1"]])
    x, t = torch.randn(2, 4, HEIGHT // 8, WIDTH // 8, generator=torch.Generator().manual_seed(0)), torch.tensor([999.0, 400.0])
    conds = comfy.samplers.encode_model_conds(model.model.extra_conds, [{"pooled_output": pooled, "model_conds": {}}], x, "cpu", "positive")
    y = conds[0]["model_conds"]["y"].cond
    assert torch.equal(y, model.model.encode_adm(pooled_output=pooled, width=WIDTH, height=HEIGHT))
    with torch.no_grad():
        want = model.model.diffusion_model(x, t, context=ctx, y=y)
        got = net(x, t, ctx, pooled=pooled)
        assert torch.allclose(got, want, atol=1e-5), (got - want).abs().max()
        swapped = model.model.diffusion_model(x, t, context=ctx, y=model.model.encode_adm(pooled_output=pooled, width=HEIGHT, height=WIDTH))
        assert (swapped - want).abs().max() > 1e-4  # the size embedding matters, so the comparison above checks it
        assert (net(x, t, ctx, pooled=pooled.flip(0)) - got).abs().amax(dim=(1, 2, 3)).min() > 1e-4
        with pytest.raises(ValueError, match="pooled"):
            net(x, t, ctx)
        d = build_discriminator(net, TrainConfig.from_dict({"discriminator": {"enabled": True}}))
        z = torch.randn_like(x)
        logits = d(x, t, z, ctx, pooled=pooled)
        other = d(x, t, z, ctx, pooled=pooled.flip(0))
        assert [tuple(lg.shape[-2:]) for lg in logits] == [(HEIGHT // 16, WIDTH // 16)] * 3  # each level after its downsample
        # the finest level cannot see it at this width: its 32 channels in 32 GroupNorm groups normalise the time/label
        # embedding's per-channel shift away; the deeper levels (64 channels) and the middle block read it
        assert all((a - b).abs().max() > 1e-3 for a, b in zip(logits[1:], other[1:]))


GAN_STEPS = {"batch_size": 2, "loss": {"warmup_steps": 0, "regression": "mse"}, "discriminator": {"enabled": True, "r1_every": 1}}


def _run_hooked(session, net, hook_g, hook_d, steps: int = 2):
    """session.run(steps) with forward pre-hooks (they see the call's kwargs) on G and on D, removed afterwards."""
    handles = [net.register_forward_pre_hook(hook_g, with_kwargs=True),
               session.trainer.method.discriminator.register_forward_pre_hook(hook_d, with_kwargs=True)]
    try:
        with torch.inference_mode(False):
            return session.run(steps)
    finally:
        for h in handles:
            h.remove()


def test_diffusion2gan_steps_feed_each_items_pooled_text_to_g_and_d(sdxl):
    """Two regression + GAN steps on the collected pairs: every call of G and of D gets the pooled text of the items'
    own prompts (mix-and-match's wrong-prompt fakes: of the rolled prompts), and G's weights change."""
    from onestep.pairs.dataset import PairDataset
    from training.config import TrainConfig
    from training.session import TrainingSession

    net = adapter(sdxl["model"])
    session = TrainingSession(net, TrainConfig.from_dict(GAN_STEPS), sdxl["folder"], None, None, torch.device("cpu"))
    pooled_of = {j: PairDataset(sdxl["folder"])[j]["pooled"] for j in range(3)}
    known = torch.stack(list(pooled_of.values()))
    seen = {"g": [], "d": []}

    def record(name):
        def hook(module, args, kwargs):
            p = kwargs.get("pooled")
            assert p is not None, f"{name} called without the pooled text"
            assert all((known - row).abs().amax(dim=1).min() == 0 for row in p), name
            seen[name].append(p.shape[0])
        return hook

    before = {k: v.clone() for k, v in net.state_dict().items()}
    result = _run_hooked(session, net, record("g"), record("d"))
    assert result.step == 2 and seen["g"] and seen["d"]
    assert any(n >= 8 for n in seen["d"])  # real, fake and mix-and-match items in one D call
    assert any(not torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert all(torch.isfinite(torch.tensor(v)) for v in result.logs.values() if isinstance(v, float))


def test_train_node_then_one_step_generate(pack, sdxl, monkeypatch):  # noqa: F811
    """Train Diffusion2GAN (MSE regression + GAN, 3 steps) through the node on the SDXL pairs; its generator file is
    SDXL-family with the teacher's attention layout, and One-Step Generate on it is the one-step formula on the trained
    UNet fed the pooled text and the image size. The dead-D notice reaches the node's text (a watch that reports any D
    after 2 steps: the wiring is under test, the thresholds in test_core_discriminator_watch.py)."""
    from onestep.format import load_generator
    from onestep.parameterization import OneStepGenerator
    from training.discriminator_watch import DiscriminatorWatch
    from training.methods import diffusion2gan

    monkeypatch.setattr(diffusion2gan, "DiscriminatorWatch", functools.partial(DiscriminatorWatch, window=2, gap_floor=math.inf, grad_drop=math.inf))
    model = sdxl["model"]
    result = pack["OneStepTrainDiffusion2GAN"].execute(
        model, "sdxl-pairs", MSE, "mse", 3, 2, 1e-4, 1e-4, 0.3, 1.0, 1, 0, 0, 0, "sdxl-d2g", False, False)
    gen, path, curve, previews = result[:4]
    text = result.ui["text"]
    assert text[0].startswith("3 steps → ") and len(text) == 2 and "discriminator stopped learning" in text[1] and "lr_d, now 0.0001" in text[1]
    _, meta = load_generator(path)
    assert (meta.method, meta.base, meta.latent_format, meta.guidance) == ("diffusion2gan", "sdxl", "sdxl", CFG)
    assert {k: meta.unet_config.get(k) for k in HEADS} == HEADS  # a reduced-width SDXL keeps its heads (not SD1.x's default)
    assert {k: gen.model.model_config.unet_config[k] for k in HEADS} == HEADS
    attn = gen.model.diffusion_model.input_blocks[1][1].transformer_blocks[0].attn1
    assert attn.heads == model.model.diffusion_model.input_blocks[1][1].transformer_blocks[0].attn1.heads
    assert previews.shape[0] == 6 and torch.isfinite(previews).all()

    (cond, extra), = encode(sdxl["clip"], PROMPTS[0])
    out = pack["OneStepGenerate"].execute(gen, [[cond, extra]], 7, WIDTH, HEIGHT, 2)[0]["samples"]
    z = comfy.sample.prepare_noise(torch.zeros(2, 4, HEIGHT // 8, WIDTH // 8), 7)
    net = adapter(gen)
    with torch.no_grad():
        ref = net.info.to_latent(OneStepGenerator(net, meta.spec())(z, cond.float().repeat(2, 1, 1), pooled=extra["pooled_output"].float().repeat(2, 1)))
    assert torch.allclose(out, ref, atol=1e-4 * ref.abs().max(), rtol=1e-4), (out - ref).abs().max()
    other = pack["OneStepGenerate"].execute(gen, [[cond, {"pooled_output": extra["pooled_output"].flip(-1)}]], 7, WIDTH, HEIGHT, 2)[0]["samples"]
    assert (other - out).abs().max() > 1e-4 * out.abs().max()


OTHER_METHODS = {  # node, its arguments after the teacher (2 steps, batch 2, full fine-tune, no resume), the file's method
    "sid_lsg": ("OneStepTrainSiDLSG", lambda s: (s["clip"], "\n".join(PROMPTS), "", "prompt", 1.5, 1.5, 1.5, 1.0, 625, WIDTH, HEIGHT, 2, 2,
                                                 1e-5, 0, 0, 0, "sdxl-sid", False, False), "sid-lsg"),
    "reflow": ("OneStepTrainReflow", lambda s: ("sdxl-pairs", 2, 2, 1e-5, 0, 0, 0, "sdxl-reflow", False, False, 1e-3, 0.5), "2-rectified-flow"),
}


@pytest.mark.parametrize("method", sorted(OTHER_METHODS))
def test_other_methods_train_on_the_sdxl_teacher(pack, sdxl, method):  # noqa: F811
    """Train SiD-LSG (prompts through core's SDXL CLIP; G, the fake score ψ and the teacher φ, CFG with the empty prompt's
    pooled text) and Train Rectified Flow (the pairs, text dropout to the negative's pooled text) on the SDXL teacher:
    the adapter refuses any UNet call without the pooled text, so the runs finishing means every call had it. Each file
    is SDXL-family with the teacher's heads, and One-Step Generate on it reads the pooled text."""
    from onestep.format import load_generator

    node, args, file_method = OTHER_METHODS[method]
    gen, path = pack[node].execute(sdxl["model"], *args(sdxl))[:2]
    _, meta = load_generator(path)
    assert (meta.method, meta.base, meta.latent_format, meta.training_steps) == (file_method, "sdxl", "sdxl", 2)
    assert {k: meta.unet_config.get(k) for k in HEADS} == HEADS and {k: gen.model.model_config.unet_config[k] for k in HEADS} == HEADS
    (cond, extra), = encode(sdxl["clip"], PROMPTS[0])
    out = pack["OneStepGenerate"].execute(gen, [[cond, extra]], 7, WIDTH, HEIGHT, 2)[0]["samples"]
    other = pack["OneStepGenerate"].execute(gen, [[cond, {"pooled_output": extra["pooled_output"].flip(-1)}]], 7, WIDTH, HEIGHT, 2)[0]["samples"]
    assert out.shape == (2, 4, HEIGHT // 8, WIDTH // 8) and torch.isfinite(out).all()
    assert (other - out).abs().max() > 1e-4 * out.abs().max()


def test_lora_run_on_the_sdxl_teacher_applies_with_core_loaders(pack, sdxl):  # noqa: F811
    """A LoRA Diffusion2GAN run on the SDXL teacher: core's LoraLoaderModelOnly applies its LoRA to the teacher MODEL, and
    One-Step Generate on teacher + LoRA equals it on the merged generator file (pooled and size conditioning included)."""
    model = sdxl["model"]
    gen = pack["OneStepTrainDiffusion2GAN"].execute(
        model, "sdxl-pairs", MSE, "mse", 2, 2, 1e-2, 1e-4, 0.3, 1.0, 1, 4, 0, 0, "sdxl-d2g-lora", False, False)[0]
    lora = folder_paths.get_full_path("loras", "sdxl-d2g-lora.safetensors")
    assert lora and any(k.startswith("diffusion_model.") and k.endswith(".lora_up.weight") for k in load_file(lora))
    patched = nodes.LoraLoaderModelOnly().load_lora_model_only(model, "sdxl-d2g-lora.safetensors", 1.0)[0]
    assert patched.patches  # core mapped the LoRA's keys onto the SDXL UNet
    (cond, extra), = encode(sdxl["clip"], PROMPTS[2])
    run = lambda m: pack["OneStepGenerate"].execute(m, [[cond, extra]], 3, WIDTH, HEIGHT, 2)[0]["samples"]  # noqa: E731
    student, with_lora, teacher = run(gen), run(patched), run(model)
    scale = student.abs().max()
    assert (student - with_lora).abs().max() <= 1e-4 * scale, (student - with_lora).abs().max()
    assert (student - teacher).abs().max() > 1e-3 * scale  # the LoRA changed the teacher's one-step output


def test_instaflow_on_pairs_of_the_sdxl_2_rectified_flow(pack, sdxl):  # noqa: F811
    """InstaFlow's chain on the SDXL teacher: Train Rectified Flow → Collect Teacher Pairs on the 2-RF MODEL (euler +
    simple; pooled stored, latents equal KSampler's) → Train InstaFlow from the 2-RF file → One-Step Generate reads the
    pooled text."""
    from onestep.format import load_generator

    flow = pack["OneStepTrainReflow"].execute(sdxl["model"], "sdxl-pairs", 2, 2, 1e-5, 0, 0, 0, "sdxl-2rf", False, False, 1e-3, 0.0)[0]
    folder = pack["OneStepCollectTeacherPairs"].execute(
        flow, sdxl["clip"], "\n".join(PROMPTS), "", "prompt", NEGATIVE, "euler", "simple", 2, 1.0, 20, 2, WIDTH, HEIGHT, 2, 2, "sdxl-2rf-pairs")[0]
    shard = load_file(f"{folder}/shard-000000.safetensors")
    assert {"pooled.0", "pooled.1", "negative.pooled"} <= set(shard)
    empty = {"samples": torch.zeros(1, 4, HEIGHT // 8, WIDTH // 8)}
    replay = nodes.KSampler().sample(flow, 21, 2, 1.0, "euler", "simple", encode(sdxl["clip"], PROMPTS[1]), encode(sdxl["clip"], NEGATIVE),
                                     empty)[0]["samples"][0]
    scale = shard["latent"][1].abs().max()
    assert (replay - shard["latent"][1]).abs().max() <= 1e-5 * scale, ((replay - shard["latent"][1]).abs().max(), scale)
    gen, path = pack["OneStepTrainInstaFlow"].execute(sdxl["model"], "sdxl-2rf", "sdxl-2rf-pairs", MSE, "mse", 2, 2, 1e-5, 0, 0, 0,
                                                      "sdxl-instaflow", False, False)[:2]
    _, meta = load_generator(path)
    assert (meta.method, meta.base, meta.prediction) == ("instaflow", "sdxl", "flow")
    assert {k: meta.unet_config.get(k) for k in HEADS} == HEADS
    (cond, extra), = encode(sdxl["clip"], PROMPTS[0])
    out = pack["OneStepGenerate"].execute(gen, [[cond, extra]], 7, WIDTH, HEIGHT, 2)[0]["samples"]
    other = pack["OneStepGenerate"].execute(gen, [[cond, {"pooled_output": extra["pooled_output"].flip(-1)}]], 7, WIDTH, HEIGHT, 2)[0]["samples"]
    assert torch.isfinite(out).all() and (other - out).abs().max() > 1e-4 * out.abs().max()


# SDXL size/crop conditioning (issue 20): CLIP Text Encode SDXL's settings, as its inputs (width, height, crop_w, crop_h,
# target_width, target_height), and as the pairs record them (manifest.SIZE_KEYS: height, width, crop_h, crop_w,
# target_height, target_width). Non-square, a crop, a target other than the original: every swap or default would show.
POS_SIZE = dict(width=1024, height=768, crop_w=32, crop_h=16, target_width=512, target_height=640)
NEG_SIZE = dict(width=2048, height=1536, crop_w=0, crop_h=0, target_width=2048, target_height=1536)
POS_ROW, NEG_ROW = [768, 1024, 16, 32, 640, 512], [1536, 2048, 0, 0, 1536, 2048]


def encode_sdxl(clip, text, size):
    """Core's CLIP Text Encode SDXL (the same text for both towers, as CLIP Text Encode tokenizes it)."""
    from comfy_extras.nodes_clip_sdxl import CLIPTextEncodeSDXL
    return CLIPTextEncodeSDXL.execute(clip, size["width"], size["height"], size["crop_w"], size["crop_h"], size["target_width"],
                                      size["target_height"], text, text)[0]


@pytest.fixture(scope="module")
def sized(pack, sdxl):  # noqa: F811
    """A 3-pair dataset collected like sdxl's, with CLIP Text Encode SDXL size settings for the prompts and the negative."""
    folder = pack["OneStepCollectTeacherPairs"].execute(
        sdxl["model"], sdxl["clip"], "\n".join(PROMPTS), "", "prompt", NEGATIVE, "euler", "normal", STEPS, CFG, SEED, 3, WIDTH, HEIGHT, 3, 3,
        "sdxl-sized", size_conditioning=encode_sdxl(sdxl["clip"], "its text is not used", POS_SIZE),
        negative_size_conditioning=encode_sdxl(sdxl["clip"], "", NEG_SIZE))[0]
    return folder


def test_pairs_record_sdxl_size_and_equal_ksampler_with_clip_text_encode_sdxl(pack, sdxl, sized):  # noqa: F811
    """Collect Teacher Pairs fed CLIP Text Encode SDXL's size settings records them per prompt and for the negative (manifest
    version 2; the dataset and the validator read them back), and a recorded latent is core KSampler's with CLIP Text
    Encode SDXL conditioning at those settings, not the default-size one. A conditioning without size keys is the default:
    the same dataset as without it (resumed, still version 1). Old datasets have no sizes and keep loading."""
    from onestep.pairs.dataset import PairDataset
    from onestep.pairs.manifest import Manifest
    from onestep.pairs.validate import validate

    shard = load_file(f"{sized}/shard-000000.safetensors")
    assert all(shard[f"size.{j}"].tolist() == [POS_ROW] for j in range(3)) and shard["negative.size"].tolist() == [NEG_ROW]
    manifest = Manifest.load(sized)
    assert manifest.to_json()["version"] == 2 and list(manifest.settings.sdxl_size) == POS_ROW + NEG_ROW
    assert PairDataset(sized)[2]["size"].tolist() == POS_ROW and PairDataset(sized).negative()["size"].tolist() == NEG_ROW
    assert validate(sized).ok and "negative [1536, 2048, 0, 0, 1536, 2048]" in validate(sized).text()
    empty = {"samples": torch.zeros(1, 4, HEIGHT // 8, WIDTH // 8)}
    replay = nodes.KSampler().sample(sdxl["model"], 11, STEPS, CFG, "euler", "normal", encode_sdxl(sdxl["clip"], PROMPTS[1], POS_SIZE),
                                     encode_sdxl(sdxl["clip"], NEGATIVE, NEG_SIZE), empty)[0]["samples"][0]
    scale = shard["latent"][1].abs().max()
    assert (replay - shard["latent"][1]).abs().max() <= 1e-5 * scale, ((replay - shard["latent"][1]).abs().max(), scale)
    default = load_file(f"{sdxl['folder']}/shard-000000.safetensors")
    assert (default["latent"][1] - shard["latent"][1]).abs().max() > 1e-3 * scale  # the settings reached the teacher
    # only the negative's settings differ: still another latent (the negative's are recorded and used on their own)
    neg_default = nodes.KSampler().sample(sdxl["model"], 11, STEPS, CFG, "euler", "normal", encode_sdxl(sdxl["clip"], PROMPTS[1], POS_SIZE),
                                          encode(sdxl["clip"], NEGATIVE), empty)[0]["samples"][0]
    assert (neg_default - replay).abs().max() > 1e-4 * scale

    # a plain CLIP Text Encode (no size keys) resolves to the default: the existing default-size dataset, resumed as it is
    assert Manifest.load(sdxl["folder"]).to_json()["version"] == 1 and "size" not in PairDataset(sdxl["folder"])[0]
    args = (sdxl["model"], sdxl["clip"], "\n".join(PROMPTS), "", "prompt", NEGATIVE, "euler", "normal", STEPS, CFG, SEED, 3, WIDTH, HEIGHT, 3, 3)
    pack["OneStepCollectTeacherPairs"].execute(*args, "sdxl-pairs", size_conditioning=encode(sdxl["clip"], "x"))
    assert Manifest.load(sdxl["folder"]).to_json()["version"] == 1 and not [k for k in load_file(f"{sdxl['folder']}/shard-000000.safetensors") if "size" in k]
    with pytest.raises(ValueError, match=r"other settings \(sdxl_size"):  # other size settings are another dataset
        pack["OneStepCollectTeacherPairs"].execute(*args, "sdxl-pairs", size_conditioning=encode_sdxl(sdxl["clip"], "", POS_SIZE))
    both = encode_sdxl(sdxl["clip"], "", POS_SIZE) + encode_sdxl(sdxl["clip"], "", NEG_SIZE)
    with pytest.raises(ValueError, match="2 different size/crop settings"):
        pack["OneStepCollectTeacherPairs"].execute(*args, "sdxl-other", size_conditioning=both)


def test_adapter_feeds_recorded_size_as_core_does(sdxl, sized):
    """With the recorded size conditioning, G's forward equals the raw UNet fed the label core makes from CLIP Text Encode
    SDXL's conditioning dict (comfy.samplers.encode_model_conds → SDXL.encode_adm), per item where items differ; changing
    the recorded original size changes G's output and D's logits."""
    from onestep.pairs.dataset import PairDataset, collate_pairs
    from training.config import TrainConfig
    from training.methods.diffusion2gan import build_discriminator

    model = sdxl["model"]
    net = adapter(model)
    batch = collate_pairs([PairDataset(sized)[j] for j in range(2)])
    ctx, pooled, size = batch["context"], batch["pooled"], batch["size"].float()
    x, t = torch.randn(2, 4, HEIGHT // 8, WIDTH // 8, generator=torch.Generator().manual_seed(0)), torch.tensor([999.0, 400.0])

    def core_y(p, settings):
        conds = comfy.samplers.encode_model_conds(model.model.extra_conds, [{"pooled_output": p, "model_conds": {}, **settings}], x, "cpu", "positive")
        return conds[0]["model_conds"]["y"].cond

    with torch.no_grad():
        want = model.model.diffusion_model(x, t, context=ctx, y=core_y(pooled, POS_SIZE))
        got = net(x, t, ctx, pooled=pooled, size=size)
        assert torch.allclose(got, want, atol=1e-5), (got - want).abs().max()
        default = net(x, t, ctx, pooled=pooled)
        assert (default - got).abs().amax(dim=(1, 2, 3)).min() > 1e-4  # the recorded size is not the default's
        # items with their own settings: each as core makes it for its own
        mixed = torch.tensor([POS_ROW, NEG_ROW], dtype=torch.float32)
        want1 = model.model.diffusion_model(x[1:], t[1:], context=ctx[1:], y=core_y(pooled[1:], NEG_SIZE))
        assert torch.allclose(net(x, t, ctx, pooled=pooled, size=mixed)[1:], want1, atol=1e-5)
        assert torch.allclose(net(x, t, ctx, pooled=pooled, size=mixed)[:1], got[:1], atol=1e-5)
        other = size.clone()
        other[:, 0] = 1536  # another original height only
        assert (net(x, t, ctx, pooled=pooled, size=other) - got).abs().amax(dim=(1, 2, 3)).min() > 1e-4
        d = build_discriminator(net, TrainConfig.from_dict({"discriminator": {"enabled": True}}))
        z = torch.randn_like(x)
        logits, moved = d(x, t, z, ctx, pooled=pooled, size=size), d(x, t, z, ctx, pooled=pooled, size=other)
        assert all((a - b).abs().max() > 1e-3 for a, b in zip(logits[1:], moved[1:]))  # levels that read the embedding (above)


def _resized_copy(src, dst, pos_row, neg_row):
    """The dataset at `src` with other recorded size settings (same latents): shards and manifest rewritten consistently."""
    import dataclasses
    import os

    from onestep.pairs.manifest import Manifest
    from onestep.pairs.shards import write_shard

    m = Manifest.load(src)
    m.settings = dataclasses.replace(m.settings, sdxl_size=(*pos_row, *neg_row))
    os.makedirs(dst)
    for k, entry in list(m.shards.items()):
        tensors = load_file(os.path.join(src, entry["file"]))
        tensors.update({key: torch.tensor([neg_row if key == "negative.size" else pos_row]) for key in tensors if "size" in key})
        m.shards[k] = write_shard(dst, k, m.settings, tensors)
    m.save(dst)
    return dst


def test_diffusion2gan_steps_feed_the_recorded_size_to_g_and_d(sdxl, sized, tmp_path):
    """Training on the sized pairs: every G and D call gets each item's recorded size with its pooled text; the same run
    on a copy whose only difference is the recorded original size gives other D losses and G weights (the size reaches
    the networks), and the default-size (old) pairs still train with no size at all."""
    from training.config import TrainConfig
    from training.session import TrainingSession


    def run(folder, check):
        net = adapter(sdxl["model"])
        session = TrainingSession(net, TrainConfig.from_dict(GAN_STEPS), folder, None, None, torch.device("cpu"))
        calls = []

        def hook(module, args, kwargs):
            calls.append(check(kwargs))

        result = _run_hooked(session, net, hook, hook)
        assert result.step == 2 and len(calls) > 4
        return result, net

    def recorded(row):
        def check(kwargs):
            s = kwargs.get("size")
            assert s is not None and s.shape == (kwargs["pooled"].shape[0], 6), "a UNet call without the recorded size"
            assert (s == torch.tensor(row, dtype=s.dtype)).all(), s
        return check

    a, net_a = run(sized, recorded(POS_ROW))
    moved_row = [1536, *POS_ROW[1:]]
    b, net_b = run(_resized_copy(sized, str(tmp_path / "moved"), moved_row, NEG_ROW), recorded(moved_row))
    d_terms = [k for k in a.logs if k.startswith("d_") and isinstance(a.logs[k], float)]
    assert d_terms and any(abs(a.logs[k] - b.logs[k]) > 1e-6 for k in d_terms), {k: (a.logs[k], b.logs[k]) for k in d_terms}
    assert any(not torch.equal(v, net_b.state_dict()[k]) for k, v in net_a.state_dict().items())
    run(sdxl["folder"], lambda kwargs: None if "size" not in kwargs else pytest.fail("old pairs gave a size"))


def test_reflow_text_dropout_takes_the_negatives_size(sdxl, sized):
    """Reflow's text dropout swaps a dropped item's text, pooled text and size conditioning for the negative's together."""
    from onestep.pairs.dataset import PairDataset, collate_pairs
    from training.losses import MicroBatch
    from training.methods.reflow import ReflowLoss
    from training.unet_interface import unet_extra

    ds = PairDataset(sized)
    batch = collate_pairs([ds[i % 3] for i in range(16)])
    mb = MicroBatch(z=batch["noise"], real=None, latent=None, context=batch["context"], extra=unet_extra(batch, torch.device("cpu")),
                    rng=torch.Generator().manual_seed(1))
    context, extra = ReflowLoss(1e-3, 0.5, ds.negative()).conditioning(mb)
    negative = ds.negative()
    dropped = (context == negative["context"]).flatten(1).all(dim=1)
    assert 0 < int(dropped.sum()) < 16
    assert torch.equal(extra["size"][dropped], torch.tensor(NEG_ROW).float().expand(int(dropped.sum()), 6))
    assert torch.equal(extra["size"][~dropped], torch.tensor(POS_ROW).float().expand(int((~dropped).sum()), 6))
    assert torch.equal(extra["pooled"][dropped], negative["pooled"].expand(int(dropped.sum()), -1))


def test_node_training_on_sized_pairs_then_one_step_generate_with_those_settings(pack, sdxl, sized):  # noqa: F811
    """Train Diffusion2GAN through the node on the sized pairs: the file notes the size settings, and One-Step Generate
    fed CLIP Text Encode SDXL at them (core passes the size keys to the generator's label input) is the one-step formula
    on the trained UNet with the recorded size; Train Rectified Flow (text dropout to the negative's) runs on them too."""
    from onestep.format import load_generator
    from onestep.parameterization import OneStepGenerator

    gen, path = pack["OneStepTrainDiffusion2GAN"].execute(
        sdxl["model"], "sdxl-sized", MSE, "mse", 2, 2, 1e-4, 1e-4, 0.3, 1.0, 1, 0, 0, 0, "sdxl-sized-d2g", False, False)[:2]
    _, meta = load_generator(path)
    assert meta.notes["sdxl_size"] == {"prompts": {**{k: POS_SIZE[k] for k in POS_SIZE}}, "negative": {**{k: NEG_SIZE[k] for k in NEG_SIZE}}}
    positive = encode_sdxl(sdxl["clip"], PROMPTS[0], POS_SIZE)
    (cond, extra), = positive
    out = pack["OneStepGenerate"].execute(gen, positive, 7, WIDTH, HEIGHT, 2)[0]["samples"]
    z = comfy.sample.prepare_noise(torch.zeros(2, 4, HEIGHT // 8, WIDTH // 8), 7)
    net = adapter(gen)
    with torch.no_grad():
        ref = net.info.to_latent(OneStepGenerator(net, meta.spec())(z, cond.float().repeat(2, 1, 1), pooled=extra["pooled_output"].float().repeat(2, 1),
                                                                    size=torch.tensor([POS_ROW] * 2).float()))
    assert torch.allclose(out, ref, atol=1e-4 * ref.abs().max(), rtol=1e-4), (out - ref).abs().max()
    plain = pack["OneStepGenerate"].execute(gen, encode(sdxl["clip"], PROMPTS[0]), 7, WIDTH, HEIGHT, 2)[0]["samples"]
    assert (plain - out).abs().max() > 1e-4 * out.abs().max()  # the settings matter at inference too
    flow, flow_path = pack["OneStepTrainReflow"].execute(sdxl["model"], "sdxl-sized", 2, 2, 1e-5, 0, 0, 0, "sdxl-sized-reflow", False, False, 1e-3, 0.5)[:2]
    assert load_generator(flow_path)[1].notes["sdxl_size"]["negative"]["width"] == 2048


def test_sid_lsg_node_feeds_its_size_conditioning_to_every_unet_call(pack, sdxl, monkeypatch):  # noqa: F811
    """Train SiD-LSG with a CLIP Text Encode SDXL size_conditioning: every call of G, the fake score ψ and the frozen
    teacher φ (CFG's empty-prompt half included) gets those settings, and the file notes them."""
    from onestep.format import load_generator
    from onestep_nodes.comfy_unet import ComfyUNet

    sizes, adm = [], ComfyUNet._adm

    def record(self, x, pooled, size):
        sizes.append(None if size is None else size.tolist())
        return adm(self, x, pooled, size)

    monkeypatch.setattr(ComfyUNet, "_adm", record)
    node, args, _ = OTHER_METHODS["sid_lsg"]
    gen, path = pack[node].execute(sdxl["model"], *args(sdxl)[:-3], "sdxl-sid-sized", False, False,
                                   size_conditioning=encode_sdxl(sdxl["clip"], "", POS_SIZE))[:2]
    monkeypatch.undo()
    # per step: ψ's phase (G, ψ on the doubled CFG batch) and G's (G, ψ, φ on doubled batches); previews: G
    assert len(sizes) >= 2 * 5 and all(s is not None and all(row == POS_ROW for row in s) for s in sizes), sizes[:3]
    assert any(len(s) == 4 for s in sizes)  # a CFG call: the empty prompt's 2 rows with the prompts' 2
    assert load_generator(path)[1].notes["sdxl_size"]["prompts"] == POS_SIZE


def test_diffusers_adapter_takes_the_same_size_rows_as_time_ids():
    """The diffusers adapter (training/diffusers_unet.py, SDXL's text_time layout) feeds a recorded size row [B, 6] as
    diffusers' time_ids (original h, w, crop top, left, target h, w: SIZE_KEYS' order); without it, the image-size default."""
    from diffusers import UNet2DConditionModel
    from diffusers_fixtures import TINY_SD15

    from training.diffusers_unet import DiffusersUNet

    torch.manual_seed(0)
    cfg = {**TINY_SD15, "cross_attention_dim": 64, "addition_embed_type": "text_time", "addition_time_embed_dim": 8,
           "projection_class_embeddings_input_dim": 16 + 6 * 8}
    unet = UNet2DConditionModel(**cfg).eval()
    net = DiffusersUNet(unet)
    assert net.info.pooled_dim == 16
    x, t, ctx, pooled = torch.randn(2, 4, 8, 6), torch.tensor([999.0, 400.0]), torch.randn(2, 5, 64), torch.randn(2, 16)
    size = torch.tensor([POS_ROW, NEG_ROW], dtype=torch.float32)
    with torch.no_grad():
        own = lambda ids: unet(x, t, encoder_hidden_states=ctx, added_cond_kwargs={"text_embeds": pooled, "time_ids": ids}).sample  # noqa: E731
        assert torch.equal(net(x, t, ctx, pooled=pooled, size=size), own(size))
        assert torch.equal(net(x, t, ctx, pooled=pooled), own(torch.tensor([[64.0, 48, 0, 0, 64, 48]] * 2)))
        assert (net(x, t, ctx, pooled=pooled, size=size) - net(x, t, ctx, pooled=pooled)).abs().max() > 1e-5


def test_headless_collect_reads_size_flags_as_the_node_reads_clip_text_encode_sdxl(sdxl):
    """`python -m onestep.pairs.cli collect --size-conditioning W H CROP_W CROP_H TW TH` (CLIP Text Encode SDXL's input
    order) gives the settings the node's size_conditioning input gives; no flags: the default."""
    import argparse

    from onestep_nodes.pair_collection import cli_size_setting

    flags = lambda size: [size[k] for k in ("width", "height", "crop_w", "crop_h", "target_width", "target_height")]  # noqa: E731
    args = argparse.Namespace(width=WIDTH, height=HEIGHT, size_conditioning=flags(POS_SIZE), negative_size_conditioning=flags(NEG_SIZE))
    assert list(cli_size_setting(sdxl["model"], args)) == POS_ROW + NEG_ROW
    args.negative_size_conditioning = None
    assert list(cli_size_setting(sdxl["model"], args)) == POS_ROW + POS_ROW
    assert cli_size_setting(sdxl["model"], argparse.Namespace(width=WIDTH, height=HEIGHT, size_conditioning=None, negative_size_conditioning=None)) == ()
