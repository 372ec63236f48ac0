"""The all-in-one demo: the main job of the README."""
