"""Image-generation metrics on Inception features: FID, Inception Score, precision and recall.

The feature network is read from a local file, never downloaded: the TorchScript Inception-v3 of the
StyleGAN / clean-fid / ADM-PyTorch tools (``inception-2015-12-05.pt``, the port of the TensorFlow graph
that defines FID). It takes uint8 images (N, 3, H, W), resizes them to 299 itself, and returns the 2,048
pool features with ``return_features=True``, or the class probabilities with ``no_output_bias=True``.
TorchScript holds a compiled graph, not pickled Python, so loading runs no foreign code. Any other
TorchScript file with the same calling convention works (the tests use a small stand-in).

Formulas, as the standard implementations:

- FID: |mu1 - mu2|^2 + tr(S1 + S2 - 2 sqrtm(S1 S2)) with pytorch-fid's handling of a singular product
  (``metrics.frechet_stats_distance``);
- Inception Score: exp E_x KL(p(y|x) || p(y)), the mean over 10 splits (OpenAI / torch-fidelity);
- precision / recall: Kynkäänniemi et al. 2019, k = 3 nearest-neighbour balls in feature space.

Reference statistics are an ``.npz`` with arrays ``mu`` (D,) and ``sigma`` (D, D), the format of
pytorch-fid's ``--save-stats``; ``save_stats`` adds the features as ``arr_0`` (N, D), and ADM's reference
batches add the images as ``arr_0`` (N, H, W, 3), whose features are computed for precision and recall.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import torch

from ..errors import CheckpointError, DataError
from ..evaluation.metrics import frechet_stats_distance
from ..utils import atomic_write_bytes


class InceptionFeatures:
    """A TorchScript feature network from a local file; ``features(images)`` and ``probabilities(images)``
    take uint8 arrays/tensors (N, 3, H, W) and run in batches."""

    def __init__(self, path: str | Path, device: str | torch.device = "cpu", batch_size: int = 100):
        if not Path(path).is_file():
            raise CheckpointError(f"{path}: Inception weights not found (a TorchScript file such as "
                                  "inception-2015-12-05.pt; nothing is downloaded)")  # fmt: skip
        try:
            with warnings.catch_warnings():  # torch.jit is deprecated; the FID Inception file is TorchScript
                warnings.simplefilter("ignore", DeprecationWarning)
                self.net = torch.jit.load(str(path), map_location=device).eval()
        except Exception as e:  # noqa: BLE001 - torch.jit raises several types
            raise CheckpointError(f"{path}: not a TorchScript feature network: {str(e).splitlines()[0]}") from None
        self.device, self.batch_size = torch.device(device), batch_size

    def _run(self, images, **kw) -> np.ndarray:
        x = torch.as_tensor(np.asarray(images))
        if x.dtype != torch.uint8 or x.ndim != 4 or x.shape[1] != 3:
            raise DataError(f"Inception features need uint8 images (N, 3, H, W), got {x.dtype} {tuple(x.shape)}")
        out = []
        with torch.no_grad():
            for i in range(0, len(x), self.batch_size):
                out.append(self.net(x[i : i + self.batch_size].to(self.device), **kw).double().cpu())
        return torch.cat(out).numpy()

    def features(self, images) -> np.ndarray:
        return self._run(images, return_features=True)

    def probabilities(self, images) -> np.ndarray:
        return self._run(images, no_output_bias=True)


def read_images(path: str | Path) -> np.ndarray:
    """uint8 images (N, 3, H, W) from an ADM ``.npz`` (``arr_0``, N x H x W x 3) or a folder of images."""
    from ..data.images import read_image_folder

    path = Path(path)
    if path.is_dir():
        x, _ = read_image_folder(path)
    elif path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as z:
                x = z["arr_0"]
        except (OSError, ValueError, KeyError) as e:
            raise DataError(f"{path}: not an ADM sample file (uint8 array 'arr_0', N x H x W x 3): {e}") from None
    else:
        raise DataError(f"{path}: expected an ADM .npz or a folder of images")
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise DataError(f"{path}: expected uint8 images N x H x W x 3, got {x.dtype} {x.shape}")
    if x.shape[-1] == 1:
        x = np.repeat(x, 3, axis=-1)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def feature_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (unbiased) covariance of (N, D) features, as pytorch-fid."""
    return features.mean(0), np.cov(features, rowvar=False)


def save_stats(path: str | Path, features: np.ndarray) -> None:
    """Write reference statistics (``mu``, ``sigma``) and the features (``arr_0``, for precision/recall)."""
    mu, sigma = feature_stats(features)
    buf = io.BytesIO()
    np.savez(buf, mu=mu, sigma=sigma, arr_0=features.astype(np.float32))
    atomic_write_bytes(Path(path), buf.getvalue())


def load_stats(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(mu, sigma, features or None) from a statistics ``.npz``."""
    try:
        with np.load(path, allow_pickle=False) as z:
            mu, sigma = z["mu"].astype(np.float64), z["sigma"].astype(np.float64)
            feats = z["arr_0"] if "arr_0" in z and z["arr_0"].ndim == 2 else None
    except (OSError, ValueError, KeyError) as e:
        raise DataError(f"{path}: not a statistics file with arrays 'mu' and 'sigma': {e}") from None
    if mu.ndim != 1 or sigma.shape != (len(mu), len(mu)):
        raise DataError(f"{path}: mu {mu.shape} and sigma {sigma.shape} do not fit together")
    return mu, sigma, feats


def inception_score(probs: np.ndarray, splits: int = 10) -> tuple[float, float]:
    """(mean, std) over ``splits`` of exp(mean_x KL(p(y|x) || p(y)))."""
    scores = []
    for part in np.array_split(probs.astype(np.float64), splits):
        py = part.mean(0, keepdims=True)
        kl = (part * (np.log(part + 1e-12) - np.log(py + 1e-12))).sum(1).mean()
        scores.append(np.exp(kl))
    return float(np.mean(scores)), float(np.std(scores))


def _chunks(n: int, rows: int):
    for i in range(0, n, rows):
        yield slice(i, min(i + rows, n))


def _kth_radius(x: np.ndarray, k: int, rows: int = 2000) -> np.ndarray:
    """Distance from each point to its k-th nearest other point, ``rows`` points at a time (never N x N)."""
    t = torch.from_numpy(x)
    out = [torch.cdist(t[s], t).kthvalue(k + 1, dim=1).values for s in _chunks(len(t), rows)]
    return torch.cat(out).numpy()  # k + 1: the point itself is at distance 0


def _covered(points: np.ndarray, centres: np.ndarray, radii: np.ndarray, rows: int = 2000) -> float:
    """Share of ``points`` inside at least one ball (centre, radius), ``rows`` points at a time."""
    p, c, r = torch.from_numpy(points), torch.from_numpy(centres), torch.from_numpy(radii)[None]
    inside = sum(int((torch.cdist(p[s], c) <= r).any(dim=1).sum()) for s in _chunks(len(p), rows))
    return inside / len(p)


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3, rows: int = 2000) -> tuple[float, float]:
    """Share of fake features inside the real k-NN manifold (precision) and of real inside fake (recall).

    Distances are computed ``rows`` points at a time: memory is O(rows x N), not the N x N matrix (20 GB in
    float64 at 50,000 points)."""
    real, fake = real.astype(np.float64), fake.astype(np.float64)
    return (_covered(fake, real, _kth_radius(real, k, rows), rows),
            _covered(real, fake, _kth_radius(fake, k, rows), rows))  # fmt: skip


def load_reference(path: str | Path, net: InceptionFeatures) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(mu, sigma, features or None) of a reference ``.npz``.

    ``arr_0`` may hold features (N, D), as written by ``save_stats``, or uint8 images (N, H, W, 3), as in ADM's
    reference batches: their features are then computed with ``net``, for precision and recall. ``mu`` and
    ``sigma``, when present, are the FID statistics (ADM's evaluator uses them too); without them the
    statistics come from the features. Features are None when the file holds statistics only.
    """
    try:
        with np.load(path, allow_pickle=False) as z:
            names = set(z.files)
            ndim = z["arr_0"].ndim if "arr_0" in names else None
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: not a reference .npz: {e}") from None
    feats = None
    if ndim == 4:
        feats = net.features(read_images(path))
    if {"mu", "sigma"} <= names:
        mu, sigma, stored = load_stats(path)
        feats = stored if feats is None else feats
    elif feats is not None:
        mu, sigma = feature_stats(feats)
    else:
        raise DataError(f"{path}: a reference needs arrays 'mu' and 'sigma', or images (N, H, W, 3) as 'arr_0'")
    return mu, sigma, feats


def image_metrics(fake_images, net: InceptionFeatures, *, ref_stats: str | Path | None = None,
                  ref_images=None, splits: int = 10) -> dict[str, float | int | str]:  # fmt: skip
    """FID and IS of uint8 images (N, 3, H, W) against a reference ``.npz`` (see ``load_reference``) or
    images; precision and recall when reference features or images are at hand, otherwise the key
    ``precision_recall`` says why they are missing."""
    if (ref_stats is None) == (ref_images is None):
        raise ValueError("give exactly one of ref_stats and ref_images")
    fake = net.features(fake_images)
    if ref_stats is not None:
        mu, sigma, real = load_reference(ref_stats, net)
    else:
        real = net.features(ref_images)
        mu, sigma = feature_stats(real)
    if len(mu) != fake.shape[1]:
        raise DataError(f"reference statistics have {len(mu)} features, the network gives {fake.shape[1]}")
    out = {"n_samples": len(fake), "fid": frechet_stats_distance(*feature_stats(fake), mu, sigma)}
    out["inception_score"], out["inception_score_std"] = inception_score(net.probabilities(fake_images), splits)
    if real is not None:
        if real.shape[1] != fake.shape[1]:
            raise DataError(f"reference features have {real.shape[1]} dimensions, the network gives {fake.shape[1]}")
        out["precision"], out["recall"] = precision_recall(real, fake)
    else:  # said in the result, never dropped silently
        out["precision_recall"] = "unavailable: the reference holds statistics only (no features or images)"
    return out
