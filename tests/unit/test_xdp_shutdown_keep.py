"""Manager.Shutdown(false) keeps forwarding (docs/data-plane.md): the marker and --stop-post's decision."""

import asyncio
import types

import pytest

from vc5.xdp_loader import stop_post
from vc5.xdp_loader.loader import Loader
from vc5.xdp_loader.stop_post import stop_post_decision


@pytest.mark.parametrize("job, result, detach", [
    ("", "success", False),                 # Shutdown(false): exit 0, no job -> keep (was: detach)
    (None, "success", False),               # systemd not reachable
    ("start", "success", False),            # someone starts it again at once
    ("stop", "success", True),              # an explicit stop wins over the marker
    ("restart", "success", False),
])
def test_the_marker_keeps_xdp_attached_unless_a_stop_is_pending(job, result, detach):
    decided, why = stop_post_decision(job, result, keep_requested=True)
    assert decided is detach and why
    if not detach and job != "restart":
        assert "Shutdown(false)" in why


def test_without_the_marker_a_clean_exit_detaches():
    assert stop_post_decision("", "success", keep_requested=False)[0] is True


def test_marker_lives_beside_the_lock_and_is_consumed(tmp_path):
    path = stop_post.keep_marker_path(str(tmp_path / "lock"))
    assert path == str(tmp_path / "keep-attached")
    assert stop_post.clear_keep_marker(path) is False
    stop_post.write_keep_marker(path)
    assert stop_post.clear_keep_marker(path) is True
    assert stop_post.clear_keep_marker(path) is False


def _loader(marker):
    stopped = []
    fake = types.SimpleNamespace(keep_marker=marker, detach_on_stop=None, on_stop=lambda: stopped.append(1))
    return fake, stopped


@pytest.mark.parametrize("detach", [False, True])
def test_shutdown_leaves_the_marker_only_when_keeping(tmp_path, detach):
    marker = str(tmp_path / "keep-attached")
    fake, stopped = _loader(marker)

    async def go():
        await Loader.shutdown(fake, detach)
        await asyncio.sleep(0.3)
    asyncio.run(go())
    assert stopped == [1] and fake.detach_on_stop is detach
    assert stop_post.clear_keep_marker(marker) is (not detach)
