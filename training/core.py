"""The host-independent core (onestep/) as the trainer sees it, imported once for both ways this package loads:
as `<pack>.training` inside ComfyUI (the pack's own `onestep`, so classes are the ones the nodes use) and as
top-level `training` from the repository root (CLI, torchrun, tests), where `onestep` is a top-level package."""
if __package__ and "." in __package__:  # <pack>.training → <pack>.onestep
    from ..onestep import atomic, bases, flow, format, parameterization, schedule, unet_keys
    from ..onestep.precision import keep_output_float32
    from ..onestep.latent_lpips import ELatentLPIPS, LatentEncoder, get_encoder
    from ..onestep.latent_lpips import weights as latent_lpips_weights
    from ..onestep.pairs.dataset import PairDataset, collate_pairs
    from ..onestep.pairs.prompts import read_prompts
else:  # top-level `training`: a relative import would go beyond the top-level package
    from onestep import atomic, bases, flow, format, parameterization, schedule, unet_keys  # type: ignore[no-redef]
    from onestep.precision import keep_output_float32  # type: ignore[no-redef]
    from onestep.latent_lpips import ELatentLPIPS, LatentEncoder, get_encoder  # type: ignore[no-redef]
    from onestep.latent_lpips import weights as latent_lpips_weights  # type: ignore[no-redef]
    from onestep.pairs.dataset import PairDataset, collate_pairs  # type: ignore[no-redef]
    from onestep.pairs.prompts import read_prompts  # type: ignore[no-redef]

OneStepSpec = parameterization.OneStepSpec
OneStepGenerator = parameterization.OneStepGenerator
DiscreteSchedule = schedule.DiscreteSchedule
atomic_write = atomic.atomic_write

__all__ = [
    "DiscreteSchedule", "ELatentLPIPS", "LatentEncoder", "OneStepGenerator", "OneStepSpec", "PairDataset", "atomic_write",
    "bases", "collate_pairs", "flow", "format", "get_encoder", "keep_output_float32", "latent_lpips_weights", "read_prompts", "unet_keys",
]
