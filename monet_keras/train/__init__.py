"""One training run: data -> CycleGAN.fit -> run folder, with callbacks, checkpoints (resume after
a crash) and the run folder's file names."""
