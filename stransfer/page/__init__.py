"""The Streamlit page (``streamlit run app.py``), split along its seams.

``state`` (what a session keeps) -> ``runner`` (the one door to run work: a job service) ->
``inputs`` (image pickers) -> ``restore`` (Load settings) -> ``sidebar`` (the widgets, giving a
``Request``) -> ``output`` (the Output panel, polled from a fragment; the gallery) -> ``main``.
Nothing here imports TensorFlow: the engine runs behind the runner.
"""
