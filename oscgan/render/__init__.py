"""The render loop: pacing, rendering and frame hand-off."""
