"""The Streamlit page (``streamlit run app.py``; ``make run`` starts it with ``stransfer page``,
which runs ``warm`` first), split along its seams.

``state`` (what a session keeps) -> ``inputs`` (image pickers, built-in styles) -> ``restore``
(Load settings) -> ``video`` (Instant mode's video) -> ``sidebar`` (the widgets, giving a
``Request``) -> ``preview`` (the instant preview) -> ``output`` (the Output panel, polled from a
fragment; the gallery) -> ``main``. Runs are jobs of ``stransfer.service`` (its worker
processes run the engines); nothing here imports TensorFlow.
"""

from pathlib import Path


def project_folder() -> Path:
    """Where the page's files are (``app.py``, ``data/``): the checkout around this package;
    where the package is installed instead (the container), the working folder."""
    checkout = Path(__file__).resolve().parents[2]
    return checkout if (checkout / "app.py").is_file() else Path.cwd()
