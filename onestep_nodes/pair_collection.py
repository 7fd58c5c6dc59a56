"""ComfyUI side of teacher-pair collection: the core's `Teacher` interface on a MODEL + CLIP (+ ControlNet),
sampling through core's own machinery (comfy.sample.sample, as KSampler does), so a recorded latent is what
KSampler gives for that seed and prompt. Shared by the Collect Teacher Pairs node and the headless CLI; imports
only `comfy.*` (never ComfyUI's top-level `nodes`), so the CLI can run it outside the server."""
from __future__ import annotations

import hashlib
import logging
import os
import time

import comfy.model_management as mm
import comfy.sample
import comfy.samplers
import torch

from onestep.pairs.collect import check_shard_memory, collect, open_dataset
from onestep.pairs.dataset import repeat_to_common_length
from onestep.pairs.manifest import SIZE_KEYS, PairSettings, prompts_hash
from onestep.pairs.prompts import read_prompts
from .compile_folder import use_compile_cache_folder
from .generator_model import check_conditioning
from .memory_budget import check_model_call, ram_bytes
from .unet_graphs import OFF, model_reason, refusal, with_graphed_unet

log = logging.getLogger("onestep")

# Samplers whose result is a function of (noise, prompt) alone: they integrate the probability-flow ODE.
ODE_SAMPLERS = (
    "euler", "euler_cfg_pp", "heun", "heunpp2", "dpm_2", "lms", "dpmpp_2m", "dpmpp_2m_cfg_pp", "ipndm", "ipndm_v", "deis",
    "res_multistep", "res_multistep_cfg_pp", "gradient_estimation", "gradient_estimation_cfg_pp", "ddim", "uni_pc", "uni_pc_bh2",
)


def check_sampler(name: str) -> None:
    """Refuse samplers that inject fresh noise: their output is not determined by the recorded z and prompt."""
    if name in ODE_SAMPLERS:
        return
    kind = "an ancestral sampler" if "ancestral" in name else "an SDE/stochastic sampler"
    raise ValueError(
        f"sampler {name!r} is {kind}: it adds new random noise at every step, so the teacher's latent is not a function "
        f"of the recorded noise and prompt and the pairs could not be learned or replayed; use a deterministic ODE sampler "
        f"({', '.join(ODE_SAMPLERS[:6])}, ...)"
    )


def fingerprint(tensors, extra: str = "") -> str:
    """A cheap weights fingerprint: names, shapes, dtypes and a strided sample of every tensor's values."""
    h = hashlib.sha256(extra.encode())
    for name, t in tensors:
        flat = t.detach().reshape(-1)
        sample = flat[:: max(1, flat.numel() // 64)][:64].float().cpu()
        h.update(f"{name}{tuple(t.shape)}{t.dtype}".encode())
        h.update(sample.numpy().tobytes())
    return h.hexdigest()


def model_fingerprint(patcher) -> str:
    """The MODEL's weights plus its patches (LoRA) and object patches (e.g. a changed model_sampling)."""
    patches = sorted((k, [(p[0], p[2]) for p in v]) for k, v in patcher.patches.items())
    objects = sorted((k, type(v).__name__) for k, v in patcher.object_patches.items())
    return fingerprint(patcher.model.diffusion_model.state_dict().items(), repr((patches, objects)))


def clip_fingerprint(clip) -> str:
    patches = sorted((k, [(p[0], p[2]) for p in v]) for k, v in clip.patcher.patches.items())
    return fingerprint(clip.cond_stage_model.state_dict().items(), repr(patches))


def controlnet_fingerprint(controlnet) -> str:
    if controlnet is None:
        return ""
    net = getattr(controlnet, "control_model", None) or getattr(controlnet, "t2i_model", None)
    return fingerprint(net.state_dict().items(), type(controlnet).__name__)


def needs_pooled(model) -> bool:
    return model.model.model_config.unet_config.get("adm_in_channels") is not None


def size_conditioning(conditioning, width: int, height: int, what: str = "size_conditioning") -> tuple[int, ...]:
    """The SDXL size/crop settings a CONDITIONING carries (CLIP Text Encode SDXL stores width, height, crop_w, crop_h,
    target_width, target_height in its dict), in SIZE_KEYS order, each missing key resolved as core resolves it for
    a `width`×`height` image: original = the image size (comfy.samplers.encode_model_conds), no crop, target = original
    (model_base.SDXL.encode_adm)."""
    found = set()
    for entry in conditioning or []:
        d = entry[1]
        w, h = d.get("width", width), d.get("height", height)
        values = (h, w, d.get("crop_h", 0), d.get("crop_w", 0), d.get("target_height", h), d.get("target_width", w))
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values):
            raise ValueError(f"{what}: the size/crop settings must be whole numbers ≥ 0, not {dict(zip(SIZE_KEYS, values))}")
        found.add(values)
    if len(found) != 1:
        raise ValueError(f"{what} is empty: connect a CLIP Text Encode SDXL node" if not found else
                         f"{what} carries {len(found)} different size/crop settings (combined conditionings?): connect one CLIP Text Encode SDXL")
    return found.pop()


def sdxl_size_setting(model, width: int, height: int, size_cond=None, negative_size_cond=None) -> tuple[int, ...]:
    """PairSettings.sdxl_size for the optional size conditionings: () where both give core's default for this image size
    (the dataset is then the same as one collected without them); the negative's defaults to the prompts'."""
    if size_cond is None and negative_size_cond is None:
        return ()
    if not needs_pooled(model):
        raise ValueError("size_conditioning only acts on SDXL-family models (their label input carries the image size and crop); "
                         "this MODEL has none: disconnect it")
    default = (height, width, 0, 0, height, width)
    pos = size_conditioning(size_cond, width, height) if size_cond is not None else default
    neg = size_conditioning(negative_size_cond, width, height, "negative_size_conditioning") if negative_size_cond is not None else pos
    return () if pos == neg == default else (*pos, *neg)


ENCODE_BATCH = 64  # prompts per batched text-encoder call: one shard's at the node's default shard size


class ComfyTeacher:
    """A MODEL + CLIP (+ ControlNet and hint images) as a teacher for the collection loop."""

    def __init__(self, model, clip, prompts: list[str], negative: str, settings: PairSettings, controlnet=None, hints=None, vae=None):
        self.model, self.clip, self.prompts, self.negative_text, self.s = model, clip, prompts, negative, settings
        self.controlnet, self.hints, self.vae = controlnet, hints, vae
        self._cache: dict[int, dict] = {}
        c, h, w = settings.latent_shape
        self._empty = torch.zeros([1, c, h, w])
        self.step_callback = None  # called after every sampler step (the node checks for cancel there)
        self.fast_teacher = OFF  # unet_graphs mode: the UNet calls replayed from CUDA graphs inside core's sampling
        self.graph_runner = None  # a test's eager stand-in for the graph replay (unet_graphs.GraphedUNet)
        self.last_wrapper = None  # the GraphedUNet of the latest batch (replayed/fallbacks counts since it was made), or None
        self.refused = None  # why the latest batch could not use fast_teacher at all (unet_graphs.model_reason), or None
        self._graphed = None  # (clone, wrapper) reused from batch to batch
        self.conditioning(-1)  # a text encoder that does not fit the model fails here, before any sampling

    def conditioning(self, prompt_index: int) -> dict[str, torch.Tensor]:
        """CLIP Text Encode of a prompt (index -1: the negative), cached; pooled kept where the model uses it."""
        if prompt_index not in self._cache:
            text = self.negative_text if prompt_index < 0 else self.prompts[prompt_index]
            out = self.clip.encode_from_tokens(self.clip.tokenize(text), return_pooled=True, return_dict=True)
            cond = {"cond": out["cond"].float().cpu(), "pooled": None}
            if out.get("pooled_output") is not None:
                cond["pooled"] = out["pooled_output"].float().cpu()
            check_conditioning(self.model, [[cond["cond"], {"pooled_output": cond["pooled"]}]])
            self._cache[prompt_index] = cond
        cond = self._cache[prompt_index]
        if not needs_pooled(self.model):
            return {"cond": cond["cond"]}
        size = self.s.size_of(negative=prompt_index < 0)
        return {**cond, "size": torch.tensor([size])} if size is not None else cond

    def encode(self, prompt_indices: list[int]) -> None:
        """Encode the uncached prompts in one text-encoder call where that is exact: with a single token stream and
        no pooled vector needed (SD1.x/2.x), every 77-token chunk is its own batch row, so the output splits into
        each prompt's conditioning; otherwise (SDXL) one call per prompt, as CLIP Text Encode does. At most
        ENCODE_BATCH prompts a call (the collector hands over a whole shard's, up to 65,536)."""
        todo = [j for j in dict.fromkeys(prompt_indices) if j not in self._cache]
        if len(todo) > ENCODE_BATCH:
            for start in range(0, len(todo), ENCODE_BATCH):
                self.encode(todo[start:start + ENCODE_BATCH])
            return
        if len(todo) > 1 and not needs_pooled(self.model):
            tokens = [self.clip.tokenize(self.prompts[j]) for j in todo]
            if len(tokens[0]) == 1 and all(t.keys() == tokens[0].keys() for t in tokens):
                key = next(iter(tokens[0]))
                lengths = [sum(len(chunk) for chunk in t[key]) for t in tokens]
                cond = self.clip.encode_from_tokens({key: [chunk for t in tokens for chunk in t[key]]})
                if cond.shape[1] == sum(lengths):
                    for j, part in zip(todo, cond.split(lengths, dim=1)):
                        self._cache[j] = {"cond": part.float().cpu(), "pooled": None}
                    return
        for j in todo:
            self.conditioning(j)

    def noise(self, seed: int) -> torch.Tensor:
        """KSampler's noise for a batch-1 latent and this seed."""
        return comfy.sample.prepare_noise(self._empty, seed)

    def _batch_cond(self, indices: list[int]) -> list:
        conds = [self.conditioning(j) for j in indices]
        extra = {}
        if needs_pooled(self.model):  # SD1.x/2.x ignore the pooled vector, so it is only passed where it is used
            extra["pooled_output"] = torch.cat([c["pooled"] for c in conds])
        size = self.s.size_of(negative=indices == [-1])
        if size is not None:  # the keys CLIP Text Encode SDXL sets, which core's encode_adm reads
            extra.update(zip(SIZE_KEYS, size))
        return [[repeat_to_common_length([c["cond"][0] for c in conds]), extra]]

    def fast_teacher_summary(self) -> str | None:
        """What fast_teacher did for the latest batch and the batches before it on the same graphed clone (for the node's
        text and the CLI's log: a user who chose it learns whether it ran, and if not why); None when off or unused yet."""
        if self.fast_teacher == OFF:
            return None
        if self.refused is not None:
            return refusal(self.fast_teacher, self.refused)
        return self.last_wrapper.summary() if self.last_wrapper is not None else None

    def sample(self, noise: torch.Tensor, prompt_indices: list[int], hint_indices: list[int] | None) -> torch.Tensor:
        self.encode(prompt_indices)
        positive = self._batch_cond(prompt_indices)
        negative = self._batch_cond([-1])
        if self.controlnet is not None:
            hint = self.hints[hint_indices].movedim(-1, 1)
            positive, negative = apply_controlnet(positive, negative, self.controlnet, hint, self.s.control_strength, self.vae)
        s = self.s
        runner = {} if self.graph_runner is None else {"runner": self.graph_runner}
        model, wrapper = with_graphed_unet(self.model, positive, negative, self.fast_teacher, reuse=self._graphed, **runner)
        if wrapper is not None:
            self._graphed = (model, wrapper)
            if self.graph_runner is None:  # replayed calls: the conditioning on the GPU once per batch (_on_device)
                positive, negative = _on_device(positive, model.load_device), _on_device(negative, model.load_device)
        self.last_wrapper = wrapper
        self.refused = None if wrapper is not None or self.fast_teacher == OFF else model_reason(
            self.model, positive, negative, need_cuda=self.graph_runner is None)
        return comfy.sample.sample(
            model, noise, s.steps, s.cfg, s.sampler, s.scheduler, positive, negative, torch.zeros_like(noise),
            denoise=1.0, disable_pbar=True, seed=s.seed_start, callback=self.step_callback,
        )


def _on_device(conditioning: list, device) -> list:
    """The conditioning's tensors moved to `device` once. Core keeps conditioning where it is given (on the CPU from
    CLIP Text Encode) and concatenates and casts it to the GPU in every UNet call; from pageable memory that copy waits
    for the GPU each time, one stream sync per call, which leaves the replayed graphs waiting on the host (session 36's
    profile, docs/benchmarks.md "Where the ~96 ms goes"). On the GPU, core's per-call concatenation and cast are
    asynchronous kernels and the values are the same."""
    return [[c.to(device), {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in extra.items()}] for c, extra in conditioning]


def apply_controlnet(positive, negative, controlnet, hint, strength: float, vae=None):
    """What core's Apply ControlNet does: one ControlNet copy with this hint on both branches."""
    c_net = controlnet.copy().set_cond_hint(hint, strength, (0.0, 1.0), vae=vae)
    out = []
    for conditioning in (positive, negative):
        out.append([[t[0], {**t[1], "control": c_net, "control_apply_to_uncond": False}] for t in conditioning])
    return out[0], out[1]


def settings_for(model, clip, prompts, negative, sampler, scheduler, steps, cfg, seed, count, width, height, batch_size,
                 shard_size, controlnet=None, hints=None, control_strength=1.0, sdxl_size: tuple[int, ...] = ()) -> PairSettings:
    """The dataset settings for these inputs (refuses stochastic samplers, bad sizes and sizes whose teacher call or
    shard would not fit in memory, with a message)."""
    check_sampler(sampler)
    if scheduler not in comfy.samplers.KSampler.SCHEDULERS:
        raise ValueError(f"unknown scheduler {scheduler!r}")
    if width < 8 or height < 8 or width % 8 or height % 8:
        raise ValueError(f"width and height must be positive multiples of 8, got {width}×{height}")
    if batch_size < 1 or shard_size < 1:
        raise ValueError(f"batch_size and shard_size must be ≥ 1, got {batch_size}, {shard_size}")
    latent_format = model.get_model_object("latent_format")
    shape = [batch_size, latent_format.latent_channels, height // 8, width // 8]
    check_model_call(model, shape, f"width {width} × height {height} at batch_size {batch_size}", "one teacher call",
                     "lower width, height or batch_size")
    shard_size = max(batch_size, -(-shard_size // batch_size) * batch_size)
    hints_sha = ""
    if controlnet is not None:
        if hints is None:
            raise ValueError("a ControlNet needs hint images: connect the hint IMAGE input")
        hints_sha = hashlib.sha256(hints.float().cpu().numpy().tobytes()).hexdigest()
    settings = PairSettings(
        teacher=model_fingerprint(model), latent_format=type(latent_format).__name__,
        latent_shape=(latent_format.latent_channels, height // 8, width // 8), sampler=sampler, scheduler=scheduler,
        steps=steps, cfg=float(cfg), negative=negative, prompts_sha256=prompts_hash(prompts), seed_start=seed, count=count,
        batch_size=batch_size, shard_size=shard_size, controlnet=controlnet_fingerprint(controlnet),
        control_strength=float(control_strength) if controlnet is not None else 0.0, hints_sha256=hints_sha, text_encoder=clip_fingerprint(clip),
        sdxl_size=tuple(sdxl_size),
    )
    check_shard_memory(settings, ram_bytes())
    return settings


CLI_FAST_TEACHER = {"off": OFF, "cuda-graph": "cuda graph", "compile": "compile + cuda graph (slow first run)"}


CLI_SIZE_KEYS = ("width", "height", "crop_w", "crop_h", "target_width", "target_height")  # CLIP Text Encode SDXL's input order


def cli_size_setting(model, args) -> tuple[int, ...]:
    """PairSettings.sdxl_size for the CLI's --size-conditioning/--negative-size-conditioning (CLIP Text Encode SDXL's six
    inputs each), read as the node reads its size_conditioning inputs."""
    as_cond = lambda values: None if values is None else [[None, dict(zip(CLI_SIZE_KEYS, values))]]  # noqa: E731
    return sdxl_size_setting(model, args.width, args.height, as_cond(getattr(args, "size_conditioning", None)),
                             as_cond(getattr(args, "negative_size_conditioning", None)))


def latent_preview(model, latents: torch.Tensor, vae=None) -> torch.Tensor:
    """IMAGE [B,H,W,3] of latents: VAE-decoded if a VAE is given, else core's cheap latent→RGB projection."""
    if vae is not None:
        return vae.decode(latents)
    fmt = model.get_model_object("latent_format")
    factors = getattr(fmt, "latent_rgb_factors", None)
    if factors is None:
        x = latents[:, :1].repeat(1, 3, 1, 1)
    else:
        x = torch.einsum("bchw,cr->brhw", latents.float().cpu(), torch.tensor(factors))
        x = x + torch.tensor(getattr(fmt, "latent_rgb_factors_bias", None) or [0.0, 0.0, 0.0]).view(1, 3, 1, 1)
    return ((x + 1) / 2).clamp(0, 1).movedim(1, -1).cpu()


def collect_headless(args) -> int:
    """The CLI's `collect`: load the teacher with ComfyUI's loaders and make this rank's shards."""
    import comfy.sd
    import torch.distributed as dist

    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("gloo")  # barriers only: every rank writes its own shards
    generator = getattr(args, "generator", None)
    if args.unet and generator:
        raise SystemExit("give one teacher model: --unet or --generator, not both")
    if not (args.checkpoint or args.unet or generator) or not (args.checkpoint or args.clip):
        raise SystemExit("give --checkpoint, or --unet (or --generator) and --clip")
    if args.checkpoint:
        # the checkpoint's UNet only when no --unet/--generator replaces it (building one is a whole model's memory and time)
        model, clip, _, _ = comfy.sd.load_checkpoint_guess_config(args.checkpoint, output_vae=False, output_clip=args.clip is None,
                                                                  output_model=not (args.unet or generator))
    if args.unet:
        model = comfy.sd.load_diffusion_model(args.unet)
    if generator:  # as Load One-Step Generator loads it: its own model sampling (a 2-RF: the flow's)
        from .generator_model import load_generator_model
        model = load_generator_model(generator)
    if args.clip:
        clip = comfy.sd.load_clip([args.clip], clip_type=getattr(comfy.sd.CLIPType, args.clip_type.upper()))
    prompts = read_prompts("\n".join(args.prompt), args.prompts, args.column)
    settings = settings_for(model, clip, prompts, args.negative, args.sampler, args.scheduler, args.steps, args.cfg, args.seed,
                            args.count, args.width, args.height, args.batch_size, args.shard_size or 8 * args.batch_size,
                            sdxl_size=cli_size_setting(model, args))
    info = {"teacher_name": os.path.basename(generator or args.checkpoint or args.unet), "made_by": "python -m onestep.pairs.cli collect"}
    if rank == 0:
        manifest = open_dataset(args.out, settings, prompts, info)
    if world > 1:
        dist.barrier()
        if rank:
            manifest = open_dataset(args.out, settings, prompts, info, create=False)
    teacher = ComfyTeacher(model, clip, prompts, args.negative, settings)
    teacher.fast_teacher = CLI_FAST_TEACHER[getattr(args, "fast_teacher", "off")]
    if teacher.fast_teacher != OFF:
        use_compile_cache_folder()
    t0 = time.time()

    def progress(done, total, _latents):
        log.info("[onestep] rank %d: %d/%d pairs, %.2f pairs/s", rank, done, total, done / max(time.time() - t0, 1e-9))

    collect(args.out, manifest, teacher, rank, world, progress=progress, write_manifest=world == 1)
    if teacher.fast_teacher_summary():
        log.info("[onestep] rank %d: %s", rank, teacher.fast_teacher_summary())
    if world > 1:
        dist.barrier()
        if rank == 0:
            manifest = open_dataset(args.out, settings, prompts, info)  # adopts every rank's shards
            manifest.save(args.out)
        dist.barrier()
        dist.destroy_process_group()
    mm.soft_empty_cache()
    return 0
