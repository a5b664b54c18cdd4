"""The program compiles under bcc/LLVM 14, passes the verifier, and its maps
are pinned with the declared layout."""

import os

from tests.lib.testrun import XDP_PASS, test_run
from vc5.xdp_loader import layout, program


def test_program_loads_and_verifies(dp):
    assert dp.xdp_fd > 0 and dp.pass_fd > 0
    info = layout.read_fdinfo(dp.xdp_fd)
    assert int(info["prog_type"]) == 6          # BPF_PROG_TYPE_XDP


def test_every_map_is_pinned_with_its_layout(dp):
    for name, spec in dp.specs.items():
        path = f"{dp.pin_dir}/{name}"
        assert os.path.exists(path), path
        layout.check_pinned_layout(spec, dp.maps[name].fd, path)


def test_pass_program_passes(dp):
    assert test_run(dp.pass_fd, bytes(64)).action == XDP_PASS


def test_source_is_found_and_flags_carry_the_sizes(dp):
    assert (program.source_dir() / program.SOURCE_NAME).is_file()
    flags = program.cflags("/sys/fs/bpf/x", flows=123)
    assert '-DVC5_PIN_DIR="/sys/fs/bpf/x"' in flags and "-DVC5_FLOWS=123" in flags
