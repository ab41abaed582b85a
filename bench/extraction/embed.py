"""The embed stage: uint8 batches through one encoder on the device, float32 vectors out."""

from __future__ import annotations

import numpy as np
import torch

from bench.encoders.loaders import LoadedEncoder

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


class Embedder:
    """One loaded encoder on its device. Pixels are scaled to [0, 1] and normalised by the
    encoder's mean and std exactly as torchvision's ToTensor + Normalize do (same float32 ops in
    the same order), then run at the requested precision; vectors come back as float32."""

    def __init__(self, loaded: LoadedEncoder, device: torch.device, precision: str = "fp32"):
        self.spec = loaded.spec
        self.device = device
        self.dtype = DTYPES[precision]
        self.model = loaded.model.to(device=device, dtype=self.dtype)
        shape = (1, 3, 1, 1)
        self.mean = torch.tensor(loaded.spec.mean, dtype=torch.float32, device=device).reshape(shape)
        self.std = torch.tensor(loaded.spec.std, dtype=torch.float32, device=device).reshape(shape)

    def inputs(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) uint8 -> the model's normalised input on the device."""
        batch = pixels.to(self.device, non_blocking=True).to(torch.float32).div_(255)
        batch.sub_(self.mean).div_(self.std)
        return batch if self.dtype == torch.float32 else batch.to(self.dtype)

    def __call__(self, pixels: torch.Tensor) -> np.ndarray:
        """Embed a batch; on CUDA out-of-memory, halve it and retry each half."""
        try:
            with torch.inference_mode():
                return self.model(self.inputs(pixels)).float().cpu().numpy()
        except torch.cuda.OutOfMemoryError:
            if len(pixels) == 1:
                raise
            torch.cuda.empty_cache()
            half = len(pixels) // 2
            return np.concatenate([self(pixels[:half]), self(pixels[half:])])
