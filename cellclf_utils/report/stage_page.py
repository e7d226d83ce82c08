"""A stage's page: its executed notebook rendered to HTML (``notebook.html`` next to it)."""
from __future__ import annotations

from pathlib import Path

import jinja2

from ..atomic import atomic_write
from .notebook_noise import clean


def stage_html(notebook_path, out_path=None, hide_code=False) -> Path:
    """Render an executed notebook to HTML (``notebook.html`` next to it by default; code
    cells' source left out with ``hide_code``), written atomically; return its path.
    Outputs' images are already base64 in the notebook, so the page stands alone."""
    import nbformat
    from nbconvert import HTMLExporter

    nb_path = Path(notebook_path)
    out = Path(out_path) if out_path else nb_path.with_suffix(".html")
    nb = clean(nbformat.read(nb_path, as_version=4))  # a notebook run by hand has its noise still
    exporter = HTMLExporter(template_name="lab", template_file="cellclf_stage.html.j2",
                            extra_loaders=[jinja2.PackageLoader("cellclf_utils.report", "templates")],
                            exclude_input=hide_code, embed_images=True)
    # the page title: the stage folder's name says more than "notebook"
    title = nb_path.parent.name if nb_path.stem == "notebook" else nb_path.stem
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": title, "path": str(nb_path.parent)}})
    return atomic_write(out, body)
