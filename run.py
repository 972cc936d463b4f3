"""pumpgan's entrypoint: `python run.py ARGS` is the `pumpgan ARGS` of an installed pumpgan.

The command itself (Hydra composes the config, one GAN is trained, its score returned to the
sweeper) is gan/cli.py. `python run.py --help` lists the config groups and their options.
"""

from gan.cli import main

if __name__ == "__main__":
    main()
