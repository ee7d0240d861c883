"""Istio, AWS App Mesh and isotope files in and out of meshsim.

Istio and App Mesh resources are translated into Envoy terms (meshsim's policy
modules) on import, as their control planes translate them for the sidecars;
isotope service graphs become a scenario's topology.
"""

from meshsim.interop._importing import ImportResult
from meshsim.interop.appmesh import import_appmesh
from meshsim.interop.isotope import import_isotope
from meshsim.interop.istio import IstioExport, IstioImport, export_istio, import_istio

__all__ = ["ImportResult", "import_appmesh", "import_isotope", "IstioExport", "IstioImport", "import_istio",
           "export_istio"]
