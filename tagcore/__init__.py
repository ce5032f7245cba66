"""tagcore: the engine of the beets autotag-ml plugin.

Audio input, features, model families and bundles. It knows nothing
of beets: it takes paths, arrays and texts and returns plain results.
Importing this package is cheap (no torch); submodules import what they need.
"""

__version__ = "0.1.0"
