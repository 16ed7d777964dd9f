"""The simulated API server's own tests: how closely faro.testing behaves like kube-apiserver."""
