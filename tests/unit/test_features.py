"""The numpy embedding must equal the reference's torch operations exactly."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from inference.kinds.patchcore.features import adaptive_pool_channels, local_aggregate, patch_embeddings, resize_bilinear


@pytest.fixture
def fmap():
    return np.random.default_rng(0).normal(size=(2, 6, 7, 9)).astype(np.float32)


def test_local_aggregation_equals_zero_padded_average_pooling(fmap):
    expected = F.avg_pool2d(torch.from_numpy(fmap), 3, stride=1, padding=1, count_include_pad=True).numpy()
    assert np.allclose(local_aggregate(fmap, 3), expected, atol=1e-5)


@pytest.mark.parametrize("size", [(14, 18), (4, 5), (7, 9)])
def test_bilinear_resize_equals_torch_interpolate(fmap, size):
    expected = F.interpolate(torch.from_numpy(fmap), size=size, mode="bilinear", align_corners=False).numpy()
    assert np.allclose(resize_bilinear(fmap, *size), expected, atol=1e-5)


@pytest.mark.parametrize("in_dim,out_dim", [(512, 1024), (1024, 512), (384, 512), (100, 7), (6, 6)])
def test_channel_projection_equals_adaptive_avg_pool1d(in_dim, out_dim):
    features = np.random.default_rng(1).normal(size=(5, in_dim)).astype(np.float32)
    expected = F.adaptive_avg_pool1d(torch.from_numpy(features)[:, None, :], out_dim)[:, 0, :].numpy()
    assert np.allclose(adaptive_pool_channels(features, out_dim), expected, atol=1e-5)


def test_patch_embeddings_shape_and_layer_shares():
    rng = np.random.default_rng(2)
    layer2 = rng.normal(size=(3, 128, 16, 16)).astype(np.float32)
    layer3 = rng.normal(size=(3, 256, 8, 8)).astype(np.float32)
    embeddings, grid = patch_embeddings([layer2, layer3], patch_size=3, embedding_dim=64)
    assert grid == (16, 16)
    assert embeddings.shape == (3, 256, 64)
    # the first half comes from layer 2 only: changing layer 3 must leave it untouched
    other, _ = patch_embeddings([layer2, layer3 * 2], patch_size=3, embedding_dim=64)
    assert np.allclose(embeddings[..., :32], other[..., :32])
    assert not np.allclose(embeddings[..., 32:], other[..., 32:])


def reference_patchcore_embedding(layers, embedding_dim):
    """patchcore-inspection's embedding in torch: aggregate, resize, per-layer pooling to
    `embedding_dim`, stack, pool the stack to `embedding_dim`."""
    grid = layers[0].shape[-2:]
    per_layer = []
    for fmap in layers:
        t = F.avg_pool2d(torch.from_numpy(fmap), 3, stride=1, padding=1)
        t = F.interpolate(t, size=grid, mode="bilinear", align_corners=False)
        flat = t.permute(0, 2, 3, 1).reshape(-1, 1, t.shape[1])
        per_layer.append(F.adaptive_avg_pool1d(flat, embedding_dim)[:, 0, :])
    stacked = torch.stack(per_layer, dim=1).reshape(len(per_layer[0]), 1, -1)
    return F.adaptive_avg_pool1d(stacked, embedding_dim)[:, 0, :].numpy()


@pytest.mark.parametrize("channels", [(128, 256), (512, 1024)])  # resnet18, wide_resnet50_2
def test_embedding_distances_equal_the_reference(channels):
    rng = np.random.default_rng(3)
    layers = [rng.normal(size=(2, channels[0], 8, 8)).astype(np.float32), rng.normal(size=(2, channels[1], 4, 4)).astype(np.float32)]
    ours, _ = patch_embeddings(layers, 3, 1024)
    reference = reference_patchcore_embedding(layers, 1024)
    ours = ours.reshape(-1, ours.shape[-1])
    assert ours.shape[1] == (384 if channels[0] == 128 else 1024)  # resnet18 stored compactly
    d_ours = np.linalg.norm(ours[:, None] - ours[None], axis=-1)
    d_ref = np.linalg.norm(reference[:, None] - reference[None], axis=-1)
    assert np.allclose(d_ours, d_ref, rtol=1e-4, atol=1e-4)
