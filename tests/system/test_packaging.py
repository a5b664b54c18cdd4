"""The .debs themselves: lintian is clean, every file is in the package that needs it."""

import os
import subprocess


def _contents(path):
    out = subprocess.run(["dpkg-deb", "-c", path], check=True, capture_output=True, text=True).stdout
    return {line.split()[-1].lstrip(".") for line in out.splitlines() if not line.endswith("/")}


def _field(path, name):
    return subprocess.run(["dpkg-deb", "-f", path, name], check=True, capture_output=True, text=True).stdout


def _deb(debs, package):
    [path] = [f for f in debs.files if os.path.basename(f).startswith(package + "_")]
    return path


def test_lintian_reports_no_error_or_warning(debs):
    assert debs.changes, f"no .changes file in {debs.dir}"
    bad = [line for line in debs.lintian.splitlines() if line[:2] in ("E:", "W:")]
    assert not bad, "lintian:\n" + "\n".join(bad)
    print(f"dpkg-buildpackage: {debs.build_seconds:.1f} s; lintian: clean")


def test_each_service_package_carries_its_units_policy_activation_user_and_man_page(debs):
    expect = {
        "vc5-xdp-loader": ("org.vc5.XdpLoader1", ["vc5-xdp-loader.service"]),
        "vc5-healthd": ("org.vc5.Health1", ["vc5-healthd.service"]),
        "vc5-bgpd": ("org.vc5.Bgp1", ["vc5-bgpd.service", "vc5-bgpd.socket"]),
        "vc5-webd": (None, ["vc5-webd.service", "vc5-webd.socket"]),
    }
    for package, (bus, units) in expect.items():
        files = _contents(_deb(debs, package))
        assert f"/usr/bin/{package}" in files, package
        for unit in units:
            assert f"/lib/systemd/system/{unit}" in files, (package, unit)
        assert f"/usr/lib/sysusers.d/{package}.conf" in files, package
        assert f"/usr/share/man/man8/{package}.8.gz" in files, package
        if bus:
            assert f"/usr/share/dbus-1/system.d/{bus}.conf" in files, package
        # D-Bus activation for healthd only; never for the loader, which changes the host's
        # networking (started by systemd alone), nor for bgpd, which a bus read must not
        # restart after an operator stopped it (issue 12).
        activation = {f for f in files if f.startswith("/usr/share/dbus-1/system-services/")}
        if package == "vc5-healthd":
            assert activation == {f"/usr/share/dbus-1/system-services/{bus}.service"}, package
        else:
            assert not activation, package


def test_library_package_has_vc5ctl_target_and_introspection_xml(debs):
    files = _contents(_deb(debs, "python3-vc5"))
    assert "/usr/bin/vc5ctl" in files
    assert "/usr/share/man/man1/vc5ctl.1.gz" in files
    assert "/usr/share/bash-completion/completions/vc5ctl" in files
    assert "/lib/systemd/system/vc5.target" in files
    assert "/usr/lib/sysusers.d/python3-vc5.conf" in files     # the group vc5 (reads /etc/vc5/vc5.yaml)
    assert "/usr/lib/python3/dist-packages/vc5/__init__.py" in files
    for xml in sorted(os.listdir(os.path.join(debs.src, "services", "vc5", "dbus"))):
        if xml.endswith(".xml"):
            assert f"/usr/share/dbus-1/interfaces/{xml}" in files, xml
            assert f"/usr/lib/python3/dist-packages/vc5/dbus/{xml}" in files, xml
    if os.path.exists(os.path.join(debs.src, "etc", "vc5", "vc5.yaml")):
        assert "/etc/vc5/vc5.yaml" in files
        conffiles = subprocess.run(["dpkg-deb", "-I", _deb(debs, "python3-vc5"), "conffiles"],
                                   capture_output=True, text=True).stdout
        assert "/etc/vc5/vc5.yaml" in conffiles.split()


def test_loader_package_ships_the_bpf_sources(debs):
    files = _contents(_deb(debs, "vc5-xdp-loader"))
    sources = [f for f in os.listdir(os.path.join(debs.src, "bpf"))
               if f.endswith((".c", ".h")) and f != "vc5_decap.c"]
    assert sources
    for name in sources:
        assert f"/usr/share/vc5/bpf/{name}" in files, name
    assert "/usr/share/vc5/bpf/vc5_decap.c" not in files        # vc5-decap's, for backends


def test_decap_package_ships_its_program_command_and_unit_template(debs):
    files = _contents(_deb(debs, "vc5-decap"))
    for path in ("/usr/share/vc5-decap/bpf/vc5_decap.c", "/usr/bin/vc5-decap",
                 "/lib/systemd/system/vc5-decap@.service", "/etc/default/vc5-decap"):
        assert path in files, path
    depends = {d.strip().split()[0] for d in _field(_deb(debs, "vc5-decap"), "Depends").split(",")}
    assert {"python3-vc5", "python3-bpfcc", "python3-pyroute2"} <= depends, depends


def test_dependencies_are_what_each_service_imports(debs):
    want = {
        "python3-vc5": ["python3-dbus-next", "python3-systemd", "python3-yaml"],
        "vc5-xdp-loader": ["python3-vc5", "python3-bpfcc", "python3-pyroute2", "linux-headers-amd64"],
        "vc5-healthd": ["python3-vc5", "python3-aiohttp", "python3-dnspython"],
        "vc5-bgpd": ["python3-vc5"],
        "vc5-webd": ["python3-vc5", "python3-aiohttp", "python3-prometheus-client"],
        "vc5": ["vc5-xdp-loader", "vc5-healthd", "vc5-bgpd", "vc5-webd"],
    }
    for package, deps in want.items():
        depends = {d.strip().split()[0] for d in _field(_deb(debs, package), "Depends").split(",")}
        missing = [d for d in deps if d not in depends]
        assert not missing, f"{package} lacks {missing} (Depends: {sorted(depends)})"
    # The library must not drag in the data plane's heavy dependencies.
    lib = _field(_deb(debs, "python3-vc5"), "Depends")
    assert "bpfcc" not in lib and "linux-headers" not in lib
