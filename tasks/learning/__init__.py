"""Models and what is done with them: records, architectures, training, metrics, scoring, evaluation, registry, tuning, prediction."""
