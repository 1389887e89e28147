"""The Streamlit page (``streamlit run app.py``; ``make run`` starts it with ``stransfer page``,
which runs ``warm`` first), split along its seams.

``state`` (what a session keeps) -> ``inputs`` (image pickers, built-in styles) -> ``restore``
(Load settings) -> ``video`` (Instant mode's video) -> ``sidebar`` (the widgets, giving a
``Request``) -> ``preview`` (the instant preview) -> ``output`` (the Output panel, polled from a
fragment; the gallery) -> ``main``. Runs are jobs of ``stransfer.service`` (its worker
processes run the engines); nothing here imports TensorFlow.
"""
