"""Where the kernels are cached when numba finds no writable folder of its own (``_cache_setting``), run in
this process with numba's refusal simulated: a private folder, created 0700 whatever the umask lets
through, or no cache at all when the folder is not private. ``tests/test_numba_cache.py`` runs the same
situations for real, on a read-only install in a subprocess."""

from __future__ import annotations

import os
import tempfile

import pytest
from numba.core import config

from ambiseg_metrics.core import _kernels


@pytest.fixture
def no_locator(tmp_path, monkeypatch):
    """numba refuses to cache until ``NUMBA_CACHE_DIR`` is set; the temporary folder is ``tmp_path``."""
    real = _kernels.njit

    def njit(**options):
        def decorate(func):
            if config.CACHE_DIR == "":
                raise RuntimeError("cannot cache function '_probe': no locator available for file")
            return real(**options)(func)

        return decorate

    monkeypatch.setattr(_kernels, "njit", njit)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(config, "CACHE_DIR", "")
    old_umask = os.umask(0o022)
    yield tmp_path / f"ambiseg-numba-{os.getuid()}"
    os.umask(old_umask)


def test_a_private_folder_is_made_and_used(no_locator):
    assert _kernels._cache_setting() is True
    assert no_locator.is_dir() and no_locator.stat().st_mode & 0o777 == 0o700
    assert config.CACHE_DIR == str(no_locator)


@pytest.mark.parametrize("mode", [0o701, 0o750, 0o777])
def test_a_folder_others_can_enter_is_not_used(no_locator, mode):
    no_locator.mkdir()
    os.chmod(no_locator, mode)
    with pytest.warns(RuntimeWarning, match="NUMBA_CACHE_DIR"):
        assert _kernels._cache_setting() is False
    assert config.CACHE_DIR == ""


def test_a_folder_of_another_user_is_not_used(no_locator, monkeypatch):
    """A private folder under our name but owned by another user (any other uid, lower or higher) is not
    loaded from: numba's cache holds pickled code."""
    no_locator.mkdir(mode=0o700)
    uid = os.getuid()
    real_lstat = os.lstat
    for owner in (uid - 1, uid + 1):

        def lstat(path, owner=owner):
            st = real_lstat(path)
            return os.stat_result((st.st_mode, st.st_ino, st.st_dev, st.st_nlink, owner, *tuple(st)[5:]))

        monkeypatch.setattr(_kernels.os, "lstat", lstat)
        with pytest.warns(RuntimeWarning, match="NUMBA_CACHE_DIR"):
            assert _kernels._cache_setting() is False
        assert config.CACHE_DIR == ""


def test_the_warning_points_at_the_caller(no_locator):
    """Attributed to the module that loads the kernels (this file here), so that a user's warning filter
    for ``ambiseg_metrics`` applies to it."""
    no_locator.mkdir(mode=0o777)
    os.chmod(no_locator, 0o777)
    with pytest.warns(RuntimeWarning, match="NUMBA_CACHE_DIR") as record:
        _kernels._cache_setting()
    assert [w.filename for w in record] == [__file__]


def test_numbas_own_folder_is_used_when_it_has_one(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    assert _kernels._cache_setting() is True
    assert not list(tmp_path.iterdir())  # no private folder made


def test_a_private_folder_numba_still_refuses_is_given_up(no_locator, monkeypatch):
    """numba refuses the private folder too (the second probe fails): the setting numba had is restored and
    the kernels are compiled without a cache, with the warning."""

    def njit(**options):
        def decorate(func):
            raise RuntimeError("cannot cache function '_probe': no locator available for file")

        return decorate

    monkeypatch.setattr(_kernels, "njit", njit)
    with pytest.warns(RuntimeWarning, match="NUMBA_CACHE_DIR"):
        assert _kernels._cache_setting() is False
    assert no_locator.is_dir() and config.CACHE_DIR == ""


def test_a_temporary_folder_that_cannot_hold_the_cache_is_given_up(no_locator, monkeypatch):
    """The private folder cannot be made (the temporary directory is a file here): no cache, the warning,
    and no error."""
    blocker = no_locator.parent / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setattr(tempfile, "tempdir", str(blocker))
    with pytest.warns(RuntimeWarning, match="NUMBA_CACHE_DIR"):
        assert _kernels._cache_setting() is False
    assert config.CACHE_DIR == "" and blocker.is_file()
