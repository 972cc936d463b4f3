"""Optuna studies through Hydra: pumpgan's sweeper (sweeper), the trials it runs (loop) and
what it keeps in the study (trials, settings, sampler, ranking, results), where a study lives
(storage), the refusals (errors), rerunning a study's best over new seeds (confirm) and runs
that report their SWD to their trial (pruning)."""
