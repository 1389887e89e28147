"""Stage 0: the facts every other stage shares, in plain Python (no TensorFlow, no Keras).

Settings and their limits, the model table, run plans and step events.
"""
