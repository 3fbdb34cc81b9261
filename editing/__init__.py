"""faceaug's face editors behind one plugin interface: the API a plugin author imports.

    from editing import Editor, EditResult, EditorPlugin                 # an editor that needs no training
    from editing import GanTrainer, GanEditor, Discriminator, EncoderDecoder, critic_steps, flipped
                                                                         # a GAN editor on the shared loop

See docs/writing-an-editor-plugin.md. Modules whose names start with an underscore are internal;
everything a plugin needs is re-exported here.
"""

from editing.base import Editor, EditResult, Trainer, editor_params, file_digest
from editing.gan import CHECKPOINT, WEIGHTS, GanEditor, GanTrainer, training_key
from editing.grids import sample_grid
from editing.losses import (
    attention_generator_losses, critic_steps, critic_update, flipped, gradient_penalty, total_variation, with_mask_penalty,
)
from editing.networks import Discriminator, EncoderDecoder, ResidualBlock, init_weights
from editing.originals import Originals, load_originals
from editing.registry import EditorPlugin, PluginLoadError, UnknownEditorError, available, failures, get_plugin, register

__all__ = [
    "CHECKPOINT", "WEIGHTS", "Discriminator", "EditResult", "Editor", "EditorPlugin", "EncoderDecoder", "GanEditor", "GanTrainer",
    "Originals", "PluginLoadError", "ResidualBlock", "Trainer", "UnknownEditorError", "attention_generator_losses", "available",
    "critic_steps", "critic_update", "editor_params", "failures", "file_digest", "flipped", "get_plugin", "gradient_penalty",
    "init_weights", "load_originals", "register", "sample_grid", "total_variation", "training_key", "with_mask_penalty",
]
