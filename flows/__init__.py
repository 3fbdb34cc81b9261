"""faceaug: flows package."""
