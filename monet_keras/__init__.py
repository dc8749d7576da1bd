"""monet-keras: a CycleGAN kit for Kaggle's "I'm Something of a Painter Myself" (photos -> Monet).

The packages by role: ``model`` (networks, losses, the CycleGAN), ``accel`` (speed policy),
``data`` (finding and reading Kaggle-layout data), ``train`` (one run), ``evaluate`` (MiFID, FID,
KID), ``submit`` (images.zip, Kaggle), ``figures``, ``experiments`` (the notebook's steps and the
batch runner); ``cli`` is the command line. Importing this package loads nothing heavy.
"""

__version__ = "0.2.0"
