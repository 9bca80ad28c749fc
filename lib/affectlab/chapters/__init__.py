"""One package per book chapter: the orchestration its notebook calls (config, data, experiments, tables, figures, report)."""
