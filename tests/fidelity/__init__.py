"""Fidelity of the simulated API server, measured against a real kube-apiserver."""
