"""labkit: readable, correct implementations behind the course notebooks.

Subpackages (each imports only what it needs; plotting lives in
``labkit.viz`` and is imported lazily):

* ``labkit.sim``: the deterministic network simulator every protocol runs on.
* ``labkit.viz``: plotly figures and ipywidgets for the notebooks.
* ``labkit.grading``: self-check helpers used by exercise test cells.
"""

__version__ = "0.1.0"
