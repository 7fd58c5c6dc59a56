"""Every node's help page (web/docs/<NodeClass>.md) is what tools/node_help.py makes from the node's own
declarations: a node, input or tooltip changed without regenerating the pages fails here."""
import pytest

from comfy_host import REPO, pack_nodes
from tools import node_help


@pytest.fixture(scope="module")
def pack():
    return pack_nodes(REPO)  # imports ComfyUI's modules (conftest set the CPU flag): a missing host fails here


def test_every_node_has_an_up_to_date_help_page(pack):
    assert node_help.main(["--check"]) == 0, "run: python -m tools.node_help (with the ComfyUI tree on PYTHONPATH)"
    want = node_help.pages(list(pack.values()))
    assert set(want) == {f"{k}.md" for k in pack}


def test_a_page_names_every_input_and_output_with_its_tooltip(pack):
    cls = pack["OneStepGenerate"]
    text = node_help.page(cls)
    assert text.startswith("# One-Step Generate\n")
    for section in ("required", "optional"):
        for name, spec in cls.INPUT_TYPES().get(section, {}).items():  # what the host serves (V3's V1 view of the schema)
            assert f"| `{name}` |" in text and " ".join(spec[1]["tooltip"].split()) in text, name
    assert "| `LATENT` | LATENT | The generated latents" in text
    assert "Text to image in one step" in text and "](workflows/fmnist_text_to_image.png)" in text  # the README's first workflow
