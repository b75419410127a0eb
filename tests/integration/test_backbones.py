import os
import subprocess
import sys

import numpy as np
import onnxruntime as ort
import pytest
import torch

from inference.vision.backbone import BackboneSpec, OnnxBackbone
from pipelines.vision.backbones import BackboneSource, resolve_backbone
from pipelines.vision.backbones import catalogue
from pipelines.vision.backbones import export as export_module
from pipelines.vision.backbones import resnet
from pipelines.vision.backbones.export import BackboneUnavailable

# Keys of torchvision's published checkpoints (a sample, including the v1.5 stride placement).
TORCHVISION_KEYS = {
    "resnet18": ["conv1.weight", "bn1.running_mean", "layer1.1.conv2.weight", "layer2.0.downsample.0.weight",
                 "layer3.1.bn2.num_batches_tracked"],
    "wide_resnet50_2": ["layer1.0.downsample.1.weight", "layer2.3.conv3.weight", "layer3.5.bn3.running_var",
                        "layer3.0.conv2.weight"],
}


@pytest.mark.parametrize("name", ["resnet18", "wide_resnet50_2"])
def test_state_dict_uses_torchvision_key_names(name):
    keys = resnet.build(name).state_dict().keys()
    assert set(TORCHVISION_KEYS[name]) <= set(keys)
    assert not any(k.startswith(("layer4", "fc")) for k in keys)


def test_wide_resnet_shapes():
    state = resnet.build("wide_resnet50_2").state_dict()
    assert tuple(state["layer2.0.conv2.weight"].shape) == (256, 256, 3, 3)  # width 2x of resnet50's 128
    assert tuple(state["layer3.5.conv3.weight"].shape) == (1024, 512, 1, 1)


def test_checkpoint_file_with_layer4_and_fc_loads_and_exports(tmp_path):
    model = resnet.build("resnet18")
    resnet.random_init(model, seed=7)
    state = dict(model.state_dict())
    state["layer4.0.conv1.weight"] = torch.zeros(1)
    state["fc.weight"] = torch.zeros(1000, 512)
    checkpoint = tmp_path / "resnet18-custom.pth"
    torch.save(state, checkpoint)
    onnx_path, spec = resolve_backbone(BackboneSource("resnet18", str(checkpoint)))
    assert spec.weights.startswith("file:")
    image = torch.randn(2, 3, 96, 128)
    with torch.no_grad():
        expected = model(image)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = session.run(["layer2", "layer3"], {"image": image.numpy()})
    assert got[0].shape == (2, 128, 12, 16) and got[1].shape == (2, 256, 6, 8)
    for ours, theirs in zip(got, expected):
        assert np.allclose(ours, theirs.numpy(), atol=1e-4, rtol=1e-4)


def test_export_is_cached_by_content(backbone):
    path, _ = backbone
    mtime = path.stat().st_mtime_ns
    again, _ = resolve_backbone(BackboneSource("resnet18", "random"))
    assert again == path and again.stat().st_mtime_ns == mtime
    other_seed, _ = resolve_backbone(BackboneSource("resnet18", "random", seed=5))
    assert other_seed != path


def test_offline_without_weights_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))

    def offline(url, target):
        raise OSError("Name or service not known")

    monkeypatch.setattr(export_module, "_download", offline)
    with pytest.raises(BackboneUnavailable, match="--weights random"):
        resolve_backbone(BackboneSource("wide_resnet50_2", "auto"))
    path, spec = resolve_backbone(BackboneSource("resnet18", "auto-or-random"))
    assert spec.weights.startswith("random") and path.is_file()


def test_hub_cache_is_used_when_present(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(export_module, "_download", lambda url, target: pytest.fail("must not download"))
    cached = export_module.hub_checkpoint_path(resnet.TORCHVISION_WEIGHTS["resnet18"])
    cached.parent.mkdir(parents=True)
    model = resnet.build("resnet18")
    resnet.random_init(model, 3)
    torch.save(model.state_dict(), cached)
    _, spec = resolve_backbone(BackboneSource("resnet18", "auto"))
    assert spec.weights == "imagenet"


def test_bad_backbone_requests():
    with pytest.raises(ValueError, match="unknown backbone"):
        resolve_backbone(BackboneSource("vgg16"))
    with pytest.raises(BackboneUnavailable, match="does not exist"):
        resolve_backbone(BackboneSource("resnet18", "/nonexistent/weights.pth"))
    with pytest.raises(FileNotFoundError):
        resolve_backbone(BackboneSource("/nonexistent/model.onnx"))


def test_custom_onnx_with_its_own_layer_names(tmp_path, backbone):
    import onnx

    model = onnx.load(str(backbone[0]))
    renamed = {"layer2": "stage2", "layer3": "stage3"}
    for output in model.graph.output:
        output.name = renamed[output.name]
    for node in model.graph.node:
        node.output[:] = [renamed.get(o, o) for o in node.output]
        node.input[:] = [renamed.get(i, i) for i in node.input]
    custom = tmp_path / "custom.onnx"
    onnx.save(model, str(custom))
    path, spec = resolve_backbone(BackboneSource(str(custom), layers=("stage2", "stage3"), mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25)))
    runner = OnnxBackbone(path, spec)
    maps = runner(np.zeros((1, 3, 64, 64), np.float32))
    assert [m.shape[1] for m in maps] == [128, 256]
    from inference.errors import BundleError

    with pytest.raises(BundleError, match="no output"):
        OnnxBackbone(path, BackboneSpec("custom", ("layer2",)))


def _int8_images(count: int = 4):
    from PIL import Image

    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)) for _ in range(count)]


def _conv_weights(path) -> dict[str, np.ndarray]:
    """Quantized weight of every INT8 convolution or matrix product of a QDQ graph."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    initializers = {i.name: i for i in graph.initializer}
    produced_by = {output: node for node in graph.node for output in node.output}
    weights = {}
    for node in graph.node:
        if node.op_type not in ("Conv", "Gemm", "MatMul"):
            continue
        dequantize = produced_by.get(node.input[1])
        if dequantize is not None and dequantize.op_type == "DequantizeLinear" and dequantize.input[0] in initializers:
            weights[node.name] = numpy_helper.to_array(initializers[dequantize.input[0]])
    return weights


def test_int8_features_cannot_depend_on_vnni(backbone, tmp_path, monkeypatch):
    """x86 CPUs without VNNI multiply u8 activations by s8 weights with vpmaddubsw, which adds each
    pair of products into a saturating int16: |a·w + a'·w'| ≤ 2 · 255 · max|w| must stay ≤ 32767, or
    the sums clip there and not on VNNI CPUs (which accumulate in int32). Weights within ±64 keep every
    CPU on exact integer sums, so a bundle gives the same features on every instance type."""
    from pipelines.vision.quantize import quantize_backbone

    monkeypatch.setenv("IVADAS_CACHE", str(tmp_path / "cache"))
    path, spec = quantize_backbone(backbone[0], backbone[1], _int8_images(), 64)
    assert spec.precision == "int8"
    weights = _conv_weights(path)
    assert len(weights) >= 15  # every convolution of resnet18's first three stages is INT8
    for name, weight in weights.items():
        assert weight.dtype == np.int8, name
        assert 2 * 255 * int(np.abs(weight.astype(np.int32)).max()) <= 32767, name


def test_int8_backbone_of_a_read_only_onnx_goes_to_the_cache(backbone, tmp_path, monkeypatch):
    """A custom ONNX often sits in a read-only folder (a shared volume, a package)."""
    import os
    import shutil

    from pipelines.vision.quantize import quantize_backbone

    monkeypatch.setenv("IVADAS_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "shared"
    folder.mkdir()
    source = folder / "model.onnx"
    shutil.copy(backbone[0], source)
    os.chmod(folder, 0o555)
    try:
        path, _ = quantize_backbone(source, backbone[1], _int8_images(2), 64)
    finally:
        os.chmod(folder, 0o755)
    assert path.is_file() and (tmp_path / "cache") in path.parents
    assert sorted(p.name for p in folder.iterdir()) == ["model.onnx"]


def test_architectures_and_their_weights_name_the_same_backbones():
    assert set(resnet.ARCHITECTURES) == set(catalogue.TORCHVISION_WEIGHTS)


def _python(code: str, env: dict) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_a_cached_backbone_resolves_without_loading_torch(backbone):
    """torch costs a training process about 180 MB resident; a cached export needs none of it."""
    code = ("import sys; from pipelines.vision.backbones import BackboneSource, resolve_backbone; "
            "path, _ = resolve_backbone(BackboneSource('resnet18', 'random')); "
            "print(path, 'torch' in sys.modules)")
    path, torch_loaded = _python(code, dict(os.environ)).rsplit(" ", 1)
    assert path == str(backbone[0]) and torch_loaded == "False"


def test_the_hub_folder_is_the_one_torch_uses(tmp_path):
    code = ("from pipelines.vision.backbones import catalogue; before = catalogue.torch_hub_dir(); "
            "import torch; print(before == __import__('pathlib').Path(torch.hub.get_dir()))")
    for variable in ("TORCH_HOME", "XDG_CACHE_HOME"):
        env = {key: value for key, value in os.environ.items() if key not in ("TORCH_HOME", "XDG_CACHE_HOME")}
        env[variable] = str(tmp_path / variable)
        assert _python(code, env) == "True"
