"""faceaug: pipeline package."""
