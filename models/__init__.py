"""Plain-torch reference Transformer implementations and the catalogue of published sizes.

Installed as ``hetsim.models`` (see pyproject.toml); torch is imported by the modules in this
package, which hetsim loads lazily.
"""
