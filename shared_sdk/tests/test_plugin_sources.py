"""`PluginSources`: the string rules for plugin code, and the loader's check of what an allowed import path names."""

from __future__ import annotations

import pytest

from shared_sdk import PluginLoadError
from shared_sdk.host import PluginSourceRefused, PluginSources, load_plugin_object


def test_import_roots_match_whole_module_names_and_one_public_attribute():
    sources = PluginSources(import_roots=("plugins",))
    sources.check_import_path("plugins.request_tagger.plugin:create_plugin")
    for refused in (
        "pluginsx.evil:Plugin",  # a prefix of a name is not the package
        "os:system",
        "plugins.request_tagger.plugin:msgspec.json",  # no attribute walk out of the module
        "plugins.request_tagger.plugin:__builtins__",
        "plugins.request_tagger.plugin",
        "plugins..x:Y",
    ):
        with pytest.raises(PluginSourceRefused) as err:
            sources.check_import_path(refused)
        assert err.value.field == "import_path", refused


def test_an_allowed_module_cannot_lend_out_what_it_imported():
    """`plugins.request_tagger.plugin` imports `BasePlugin` from shared_sdk: naming it through the allowed module
    does not make shared_sdk code a plugin (it is refused before it is called)."""
    allows = PluginSources(import_roots=("plugins",)).allows_module
    with pytest.raises(PluginLoadError, match="not under an allowed import root"):
        load_plugin_object("x", "plugins.request_tagger.plugin:BasePlugin", allows_module=allows)
    assert load_plugin_object("x", "plugins.request_tagger.plugin:create_plugin", allows_module=allows).name


def test_commands_run_only_programs_directly_in_an_allowed_directory():
    with pytest.raises(PluginSourceRefused, match="disabled"):
        PluginSources().check_command(["/opt/fj/bin/plugin"])  # the default: no command directory
    sources = PluginSources(command_dirs=("/opt/fj/bin/",))
    sources.check_command(["/opt/fj/bin/plugin", "--flag"])
    for refused in (["plugin"], ["/opt/fj/bin/../../../bin/sh", "-c", "id"], ["/opt/fj/bin/sub/plugin"], []):
        with pytest.raises(PluginSourceRefused):
            sources.check_command(refused)
    with pytest.raises(ValueError):
        PluginSources(command_dirs=("relative/bin",))


def test_entry_points_are_looked_up_in_installed_metadata():
    sources = PluginSources()
    sources.check_entry_point("pii-redactor")  # declared in Fjordgate's own pyproject.toml
    for refused in ("no-such-plugin", "../x", ""):
        with pytest.raises(PluginSourceRefused):
            sources.check_entry_point(refused)
