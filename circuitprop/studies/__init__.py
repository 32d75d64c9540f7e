"""Studies built on training: sweeps of many trainings on Dask (``sweep``) and figures (``plots``)."""
