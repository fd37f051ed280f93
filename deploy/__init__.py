"""snndeploy: prune spiking networks during SLAYER training, export through NIR to Lava, estimate Loihi 2 cost."""

from snndeploy import _lava_compat

# Must run before anything imports lava: it makes lava-nc 0.10 / lava-dl 0.6 importable on Python 3.11.
_lava_compat.install()

__version__ = "0.1.0"
