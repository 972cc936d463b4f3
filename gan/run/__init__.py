"""One training run: the loop (train), its folder and checkpoints (folder), where it computes
(hardware), Ctrl-C at step boundaries (interrupts), the stability score (score), the SWD
(quality) and the command that reproduces it (command)."""
