"""Every bound on a number a user asks for, in one table: the command line, the API and the web demo check
against these (a page's own smaller sizes are the demo's)."""

MAX_SAMPLING_STEPS = 10_000  #: sampling (and inversion) steps: no sampler gains past this, and its time grid would grow
MAX_IMAGES = 1_000_000  #: images one command may generate (KID/FID keep 8 KiB of features each)
MAX_SEED = 2**63 - 1  #: seeds are 63-bit
MAX_GUIDANCE = 20.0  #: classifier-free guidance weight; far past the useful range (about 1 to 4)
MAX_FRAMES = 240  #: frames of one interpolation (a GIF of 30 s at 120 ms a frame)
