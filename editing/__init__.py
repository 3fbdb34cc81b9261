"""faceaug: editing package."""
