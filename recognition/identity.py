"""Identity preservation of the run's editors, scored once the baseline verifier exists.

Does an edit keep the person recognisable? For each editor and attribute, on the same held-out test
faces the editor was scored on (`editing.evaluate.held_out`), the cosine similarity between the
baseline verifier's embeddings of a face and of its edit, next to the mean similarity of
same-identity and of different-identity pairs. The stage runs after the verifiers are trained (the
editors' own scores come earlier), so a first run's report is complete; the result is written to
identity.json beside the editor (pipeline.layout).
"""

from __future__ import annotations

from typing import Callable

import torch

from pipeline.atomic import write_json_atomic
from pipeline.config import RunConfig
from pipeline.layout import RunLayout


def baseline_embedding(cfg: RunConfig, device: str = "cpu") -> Callable[[torch.Tensor], torch.Tensor] | None:
    """Embeddings of the run's baseline verifier (its first seed); None until one is trained."""
    from recognition.embedding import embed, load_verifier

    out = RunLayout(cfg).verifier_dir("baseline", cfg.verifier.seeds[0])
    if not RunLayout(cfg).verifier_done("baseline", cfg.verifier.seeds[0])[0].exists():
        return None
    model = load_verifier(out, device)
    return lambda images: torch.from_numpy(embed(model, images))


@torch.inference_mode()
def identity_stage(cfg: RunConfig, attribute: str, *, editor_name: str | None = None, device: str = "cpu",
                   progress: Callable[[str], None] = print) -> dict | None:
    """Score one editor's identity preservation with the baseline verifier -> identity.json (None without a baseline)."""
    from editing.evaluate import held_out, identity_preservation
    from editing.train import load_editor
    from pipeline.images import batch_to_model_range

    name = editor_name or cfg.editor.name
    embed = baseline_embedding(cfg, device)
    if embed is None:
        progress(f"identity preservation of {name}/{attribute}: no baseline verifier in this run, skipped")
        return None
    editor = load_editor(cfg, attribute, name, device=device)
    test = held_out(cfg)
    original = batch_to_model_range(test.images)
    target = 1 - test.labels(attribute)
    sources = test.source_ids
    edited = torch.cat([editor.apply(original[i: i + 64], target[i: i + 64], sources[i: i + 64]).images.float()
                        for i in range(0, len(original), 64)])
    result = {"editor": name, "attribute": attribute, "images": len(original), "verifier": f"baseline/seed-{cfg.verifier.seeds[0]}",
              **identity_preservation(embed, original, edited, test.identities)}
    write_json_atomic(result, RunLayout(cfg).identity(attribute, name))
    progress(f"identity preservation of {name}/{attribute}: cos(face, edit) {result['original_vs_edited']:.3f}")
    return result
