"""What users run meshsim for: chaos experiments with steady-state hypotheses, capacity sweeps and
SLO searches, and simulated progressive rollouts; on a local process pool or a Dask cluster."""
