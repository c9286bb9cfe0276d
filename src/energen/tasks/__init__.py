"""What the models are for: denoising, in-painting, OOD detection, composition and translation."""
