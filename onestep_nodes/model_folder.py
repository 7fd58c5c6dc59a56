"""The pack's model folders: models/onestep/ (generators, .safetensors only) and models/latent_lpips/
(E-LatentLPIPS weights), plus any paths extra_model_paths.yaml gives them."""
from __future__ import annotations

import os

import folder_paths

FOLDER = "onestep"
EXTENSIONS = {".safetensors"}


LATENT_LPIPS_FOLDER = "latent_lpips"  # E-LatentLPIPS weights: published .pth/.pth.tar and converted .safetensors
LATENT_LPIPS_EXTENSIONS = {".safetensors", ".pth", ".tar"}


def register(folder: str = FOLDER, extensions: set[str] = EXTENSIONS) -> None:
    """Register (idempotently) and create models/<folder>, keeping paths set by extra_model_paths.yaml."""
    default = os.path.join(folder_paths.models_dir, folder)
    os.makedirs(default, exist_ok=True)
    paths = folder_paths.folder_names_and_paths.get(folder, ([], set()))[0]
    if default not in paths:  # first, as for core's folders: new files go to models/<folder>
        paths.insert(0, default)
    folder_paths.folder_names_and_paths[folder] = (paths, set(extensions))


def generator_files() -> list[str]:
    """Generator files for a combo."""
    return folder_paths.get_filename_list(FOLDER)


def resolve_generator(value: str, what: str = "init_from") -> str:
    """A generator file given by its name in models/onestep (with or without .safetensors) or by the path a training
    node outputs (which must lie in a models/onestep folder)."""
    value = value.strip()
    if not value:
        raise ValueError(f"{what} is empty: give a generator file in models/onestep or connect a training node's generator_path")
    roots = [os.path.realpath(p) for p in folder_paths.get_folder_paths(FOLDER)]
    if os.path.isabs(value):
        full = os.path.realpath(value)
        if not any(full.startswith(r + os.sep) for r in roots):
            raise ValueError(f"{what} {value!r} is outside models/onestep; give a generator name")
    else:
        name = value if value.endswith(".safetensors") else value + ".safetensors"
        full = folder_paths.get_full_path(FOLDER, name)
        if full is None:
            raise ValueError(f"{what} {value!r} is not a generator file in models/onestep")
    if not os.path.isfile(full):
        raise ValueError(f"{what} {value!r} does not exist ({full})")
    return full


def has_control_characters(text: str) -> bool:
    """NUL, newlines and other control characters: never part of a name a user means (a NUL makes the OS calls raise,
    a newline would make a file whose name the UI cannot show)."""
    return any(ord(ch) < 32 or ord(ch) == 127 for ch in text)


def plain_name(name: str) -> bool:
    """A name for a new file or folder: no folders, not hidden, no control characters."""
    return bool(name) and os.path.basename(name) == name and not name.startswith(".") and not has_control_characters(name)


def output_path(name: str, overwrite: bool = False) -> str:
    """Where a new generator called `name` is written (models/onestep); refuses a name already listed anywhere."""
    if not plain_name(name):
        raise ValueError(f"invalid generator name {name!r}: give a plain file name without folders")
    if not name.endswith(".safetensors"):
        name += ".safetensors"
    existing = folder_paths.get_full_path(FOLDER, name)
    if existing and not overwrite:
        raise ValueError(f"{name} already exists ({existing}); choose another name or enable overwrite")
    return existing or os.path.join(folder_paths.get_folder_paths(FOLDER)[0], name)


def _relative_name(rel: str, what: str, root: str) -> str:
    """A typed relative path, checked as text: no absolute path, no control characters, no '..' leaving the folder."""
    rel = rel.strip()
    if not rel or has_control_characters(rel):
        raise ValueError(f"{what} {rel!r} is not a usable path: give a name relative to {root}")
    if os.path.isabs(rel) or os.path.normpath(rel).split(os.sep)[0] == "..":
        raise ValueError(f"{what} {rel!r} is outside ComfyUI's model folders; give a path relative to {root}")
    return os.path.normpath(rel)


def resolve_source(rel: str) -> str:
    """A user-given source path, relative to ComfyUI's models folder and required to stay inside its model folders.
    The check is on the path as typed (normalised, links not followed): a link the user put inside a model folder
    (a shared model drive) is followed, as core follows it; a typed path can never leave the folders."""
    root = os.path.abspath(folder_paths.models_dir)
    name = _relative_name(rel, "source", root)
    roots = {root} | {
        os.path.abspath(p) for key, (paths, _) in folder_paths.folder_names_and_paths.items() if key != "custom_nodes" for p in paths
    }
    full = os.path.join(root, name)
    if not any(full == r or full.startswith(r + os.sep) for r in roots if r):
        raise ValueError(f"source {rel!r} is outside ComfyUI's model folders; give a path relative to {root}")
    if not os.path.exists(full):
        raise ValueError(f"source {rel!r} does not exist (looked at {full})")
    return full


register()
register(LATENT_LPIPS_FOLDER, LATENT_LPIPS_EXTENSIONS)


PAIRS_FOLDER = "onestep_pairs"  # teacher-pairs datasets: one folder each, listed by their manifest.json


def dataset_folder(name: str) -> str:
    """The folder of dataset `name` under models/onestep_pairs (an existing one in any registered path first)."""
    name = name.strip()
    if not plain_name(name):
        raise ValueError(f"invalid dataset name {name!r}: give a plain folder name without slashes")
    for root in folder_paths.get_folder_paths(PAIRS_FOLDER):
        if os.path.isdir(os.path.join(root, name)):
            return os.path.join(root, name)
    return os.path.join(folder_paths.get_folder_paths(PAIRS_FOLDER)[0], name)


def dataset_names() -> list[str]:
    """Datasets for a combo: the folders under models/onestep_pairs that hold a manifest."""
    return sorted({os.path.dirname(f) for f in folder_paths.get_filename_list(PAIRS_FOLDER) if os.path.basename(f) == "manifest.json" and os.path.dirname(f)})


def resolve_input(rel: str) -> str:
    """A user-given file path relative to ComfyUI's input folder, required to stay inside it."""
    root = os.path.realpath(folder_paths.get_input_directory())
    if has_control_characters(rel):
        raise ValueError(f"file {rel!r} is not a usable file name: give the name of a file in {root}")
    full = os.path.realpath(os.path.join(root, rel.strip()))
    if not full.startswith(root + os.sep):
        raise ValueError(f"file {rel!r} is outside ComfyUI's input folder; put it in {root} and give its name")
    if not os.path.isfile(full):
        raise ValueError(f"file {rel!r} not found in ComfyUI's input folder ({root})")
    return full


register(PAIRS_FOLDER, {".json"})


def file_fingerprint(folder: str, *names: str) -> str:
    """What changes when one of these files in a model folder is replaced (its modification time and size): a loader's
    `fingerprint_inputs`, so that ComfyUI loads a file rewritten under the same name (by a training run, an import with
    overwrite) again instead of reusing the MODEL it cached for that name."""
    parts = []
    for name in names:
        try:
            st = os.stat(folder_paths.get_full_path(folder, name))
            parts.append(f"{st.st_mtime_ns}:{st.st_size}")
        except (OSError, TypeError, ValueError):  # absent, not listed (None) or not a name: the load itself says why
            parts.append("absent")
    return "|".join(parts)
