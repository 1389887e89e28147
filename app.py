"""Stransfer's Streamlit page: ``streamlit run app.py``.

The page lives in ``stransfer.page`` (state, runner, inputs, restore, sidebar, output, main);
this file is only the entry point Streamlit runs. Environment: ``STRANSFER_DATA_DIR``
(default: ``data/``) holds ``content/`` and ``style/``; ``STRANSFER_WEIGHTS`` (``random`` or a
``.h5`` file) overrides the ImageNet weights.
"""

from stransfer.page.main import main

main()
