"""The data-folder guard: nothing outside the folder is read or written, whatever the user types."""

from __future__ import annotations

import os

import pytest

from fairwatch.connectors.active import absolute_source, save_spec, saved_config_spec
from fairwatch.connectors.datapaths import list_data_files, safe_data_path, save_upload, upload_name
from fairwatch.metrics.errors import SourceError
from fairwatch.metrics.audit.spec import parse_spec


@pytest.fixture()
def root(tmp_path, monkeypatch):
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    (data / "ok.csv").write_text("a\n1\n")
    (data / "sub" / "deep.parquet").write_bytes(b"x")
    (tmp_path / "secret.csv").write_text("s\n1\n")
    monkeypatch.setenv("FAIRWATCH_DATA_DIR", str(data))
    return data


def test_inside_paths_resolve(root):
    assert safe_data_path("ok.csv") == (root / "ok.csv").resolve()
    assert safe_data_path("sub/deep.parquet") == (root / "sub" / "deep.parquet").resolve()
    assert safe_data_path(str(root / "ok.csv")) == (root / "ok.csv").resolve()


@pytest.mark.parametrize("typed", ["../secret.csv", "sub/../../secret.csv", "..", "./../data/ok.csv"])
def test_dot_dot_is_refused(root, typed):
    with pytest.raises(SourceError, match=r"'\.\.' is not allowed"):
        safe_data_path(typed)


def test_absolute_path_outside_is_refused(root, tmp_path):
    with pytest.raises(SourceError, match="outside the data folder"):
        safe_data_path(str(tmp_path / "secret.csv"))
    with pytest.raises(SourceError, match="outside the data folder"):
        safe_data_path("/etc/passwd")


def test_symlink_escaping_the_folder_is_refused(root, tmp_path):
    os.symlink(tmp_path / "secret.csv", root / "link.csv")
    os.symlink(tmp_path, root / "linkdir")
    with pytest.raises(SourceError, match="outside the data folder"):
        safe_data_path("link.csv")
    with pytest.raises(SourceError, match="outside the data folder"):
        safe_data_path("linkdir/secret.csv")
    assert "link.csv" not in list_data_files(root)


def test_missing_empty_and_folder_inputs_say_how_to_fix(root):
    with pytest.raises(SourceError, match="file not found"):
        safe_data_path("nope.csv")
    with pytest.raises(SourceError, match="no file given"):
        safe_data_path("  ")
    with pytest.raises(SourceError, match="is a folder"):
        safe_data_path("sub")
    assert safe_data_path("new.toml", must_exist=False) == (root / "new.toml").resolve()


def test_listing_shows_readable_files_relative_to_the_folder(root):
    assert list_data_files(root) == ["ok.csv", "sub/deep.parquet"]


def test_uploads_get_safe_generated_names(root):
    name = upload_name("../../evil name;rm -rf.csv", b"a\n1\n")
    assert name.startswith("upload-") and name.endswith(".csv") and "/" not in name and ".." not in name
    path = save_upload("my data.csv", b"a\n1\n", root)
    assert path.parent == root.resolve() and path.read_bytes() == b"a\n1\n"
    assert save_upload("my data.csv", b"a\n1\n", root) == path  # same content, same file
    with pytest.raises(SourceError, match="upload a"):
        upload_name("model.pkl", b"x")
    with pytest.raises(SourceError, match="empty"):
        save_upload("empty.csv", b"", root)


def test_saved_configs_stay_in_the_folder_and_read_back(root):
    spec = parse_spec({"source": {"path": str(root / "ok.csv")},
                       "columns": {"label": "a", "prediction": "a2", "sensitive": ["s"]}})
    path = save_spec(spec, "cfg/fairwatch.toml")
    assert path == (root / "cfg" / "fairwatch.toml").resolve()
    assert saved_config_spec("cfg/fairwatch.toml") == spec
    with pytest.raises(SourceError):
        save_spec(spec, "../escape.toml")
    with pytest.raises(SourceError, match=r"\.toml"):
        save_spec(spec, "fairwatch.txt")


def test_relative_source_paths_are_read_from_the_base(tmp_path):
    spec = parse_spec({"source": {"path": "data/x.csv"}, "columns": {"label": "a", "prediction": "b",
                                                                      "sensitive": ["s"]}})
    assert absolute_source(spec, tmp_path).source.path == str((tmp_path / "data" / "x.csv").resolve())
