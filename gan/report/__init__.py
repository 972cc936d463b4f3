"""Comparing run folders (`python -m gan.compare`), one room per purpose, each importing only
those above it in this list: values (how a value is shown), runs (reading and ranking run
folders), table (terminal table and CSV), studies (the Optuna studies, edge warnings), figures
(figures of runs), studyplots (figures of a study), html (the page, from templates/), compare
(the command)."""
