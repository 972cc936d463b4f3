"""Optuna studies through Hydra: pumpgan's sweeper (sweeper) and what it keeps in the study
(trials, settings, sampler, ranking, results), rerunning a study's best over new seeds
(confirm) and runs that report their SWD to their trial (pruning)."""
