"""Istio, AWS App Mesh and isotope files in and out of meshsim.

Istio and App Mesh resources are translated into Envoy terms (meshsim's policy
modules) on import, as their control planes translate them for the sidecars;
isotope service graphs become a scenario's topology.
"""
