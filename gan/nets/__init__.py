"""The nets and what one training step computes with them: G and D (models), the fast layers
that compute the same thing faster on a CPU (fast), the adversarial losses (losses) and
DiffAugment (diffaugment). Imports torch only: no Hydra, no Optuna."""
