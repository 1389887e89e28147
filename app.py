"""Stransfer's Streamlit page: ``streamlit run app.py`` (``make run`` uses ``python -m stransfer
page``: the same, warmed up before the first visitor).

The page lives in ``stransfer.page`` (state, inputs, restore, video, sidebar, preview, output,
main), a client of ``stransfer.service``;
this file is only the entry point Streamlit runs. The title goes out before the rest of the
page is even imported. Environment: ``STRANSFER_DATA_DIR`` (default: ``data/``) holds
``content/`` and ``style/``; ``STRANSFER_WEIGHTS`` (``random`` or a ``.h5`` file) overrides
the ImageNet weights.
"""

from stransfer.page.header import header

header()

from stransfer.page.main import main  # noqa: E402 - after the title, on purpose

main()
