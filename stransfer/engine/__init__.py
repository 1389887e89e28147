"""Stage 3: the Gatys optimiser on TensorFlow/Keras.

Backbones -> features -> losses -> optimisers -> the run (``engine.run.transfer``).
"""
