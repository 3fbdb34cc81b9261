"""faceaug: recognition package."""
