"""Names from outside as path components, and removals that never leave their root."""

from __future__ import annotations

import pytest

from datman_flow.safe_paths import UnsafePath, remove_tree, safe_component


@pytest.mark.parametrize("name", ["..", ".", "", "../../nii", "/etc", "a/b", "a\\b", ".hidden", "x" * 129, None, 7])
def test_unsafe_names_are_refused_with_what_they_are(name):
    with pytest.raises(UnsafePath, match="XNAT scan ID"):
        safe_component(name, "XNAT scan ID")


@pytest.mark.parametrize("name", ["1", "2-1", "MR1_scan.3", "T1w+gd"])
def test_ordinary_ids_pass_unchanged(name):
    assert safe_component(name, "XNAT scan ID") == name


def test_remove_tree_refuses_anything_outside_its_root(tmp_path):
    root, other = tmp_path / "raw" / "S1", tmp_path / "nii"
    (root / "3").mkdir(parents=True)
    other.mkdir()
    (other / "keep.nii.gz").write_bytes(b"x")
    for target in (root / ".." / ".." / "nii", other, root, tmp_path):
        with pytest.raises(UnsafePath):
            remove_tree(target, root)
    assert (other / "keep.nii.gz").exists() and root.exists()
    assert remove_tree(root / "3", root) and not (root / "3").exists()
    assert not remove_tree(root / "3", root)  # already gone


def test_a_symlink_is_removed_as_a_link_never_followed(tmp_path):
    root, outside = tmp_path / "raw" / "S1", tmp_path / "precious"
    root.mkdir(parents=True)
    outside.mkdir()
    (outside / "data.dcm").write_bytes(b"x")
    (root / "3").symlink_to(outside)
    assert remove_tree(root / "3", root)
    assert (outside / "data.dcm").exists() and not (root / "3").exists()
