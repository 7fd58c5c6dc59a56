"""The host-independent core (onestep/) as the trainer sees it: the names the training modules share, in one place."""
from onestep import atomic, bases, flow, format, parameterization, schedule, unet_keys
from onestep.latent_lpips import ELatentLPIPS, LatentEncoder, get_encoder
from onestep.latent_lpips import weights as latent_lpips_weights
from onestep.latent_spaces import LATENT_SPACES, LatentSpace, latent_space
from onestep.pairs.dataset import PairDataset, collate_pairs
from onestep.pairs.manifest import size_notes
from onestep.pairs.prompts import read_prompts
from onestep.precision import keep_output_float32

OneStepSpec = parameterization.OneStepSpec
OneStepGenerator = parameterization.OneStepGenerator
DiscreteSchedule = schedule.DiscreteSchedule
atomic_write = atomic.atomic_write

__all__ = [
    "DiscreteSchedule", "ELatentLPIPS", "LATENT_SPACES", "LatentEncoder", "LatentSpace", "OneStepGenerator", "OneStepSpec", "PairDataset", "atomic_write",
    "bases", "collate_pairs", "flow", "format", "get_encoder", "keep_output_float32", "latent_lpips_weights", "latent_space", "read_prompts", "size_notes",
    "unet_keys",
]
