"""Chapter pipelines: the orchestration behind each notebook (data, train-or-load, evaluation, figures)."""
