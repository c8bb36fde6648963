"""The top-level ``cnilab`` group imports a command's module only when that command runs.

Why: every command module pulls in its own world (topology models, backends, the simulator, the
API server); importing all of them cost ~0.3 s at every start, also for ``--help`` and ``down``
(issue 16: CLI start <= 0.2 s). The group lists commands from a generated index (name -> module
and help text, :mod:`cnilab.sim.cli.command_index`), and resolves a command by importing just the module
that registers it. The index is generated from the modules themselves
(``python -m cnilab.sim.cli.lazy --write``) and tests/test_cli_imports.py fails when it is stale; a name
missing from it still resolves, by importing every module.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from pathlib import Path
from typing import Any

import typer
import typer.main
from typer._click import Command, Context, HelpFormatter
from typer._click.utils import make_default_short_help
from typer.core import TyperGroup

IndexEntry = tuple[str, str, bool]  # module, help text, True when the text is the command's short_help
INDEX_FILE = Path(__file__).with_name("command_index.py")


def new_app(**settings: Any) -> typer.Typer:
    """A Typer with the settings every cnilab command is built with (the root and the lazy loaders)."""
    # Help text is plain text: docstrings name values like [PERIOD] or MS[/JITTER], which rich markup
    # would parse as tags (and crash `--help` on the closing one).
    return typer.Typer(pretty_exceptions_enable=False, add_completion=False, rich_markup_mode=None, **settings)


def load_commands(modules: Sequence[str]) -> dict[str, Command]:
    """Import ``modules``, let each ``register`` its commands, return them as click commands."""
    sub = new_app()
    for name in modules:
        importlib.import_module(name).register(sub)
    return dict(typer.main.get_group(sub).commands)


class LazyCommands(MutableMapping[str, Command]):
    """name -> command; the command's module is imported on first lookup, not on listing."""

    def __init__(self, index: Mapping[str, IndexEntry], modules: Sequence[str], loaded: dict[str, Command]):
        self._index, self._modules, self._loaded = index, modules, loaded

    def __getitem__(self, name: str) -> Command:
        if name not in self._loaded:
            entry = self._index.get(name)
            self._loaded.update({**load_commands([entry[0]] if entry else self._modules), **self._loaded})
        return self._loaded[name]

    def __setitem__(self, name: str, cmd: Command) -> None:
        self._loaded[name] = cmd

    def __delitem__(self, name: str) -> None:
        del self._loaded[name]

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys([*self._index, *self._loaded]))

    def __len__(self) -> int:
        return len(dict.fromkeys([*self._index, *self._loaded]))

    def __contains__(self, name: object) -> bool:
        return name in self._index or name in self._loaded

    def short_help(self, name: str, limit: int) -> str | None:
        """The help column of ``name`` without importing it when the index has it."""
        if name in self._index and name not in self._loaded:
            _, text, is_short = self._index[name]
            return inspect.cleandoc(text).strip() if is_short else make_default_short_help(text, limit).strip()
        cmd = self.get(name)
        return None if cmd is None or cmd.hidden else cmd.get_short_help_str(limit)


def lazy_group(index: Mapping[str, IndexEntry], modules: Sequence[str]) -> type[TyperGroup]:
    """A TyperGroup class (for ``typer.Typer(cls=...)``) serving the commands of ``modules`` lazily."""

    class LazyGroup(TyperGroup):
        commands: LazyCommands

        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.commands = LazyCommands(index, modules, dict(self.commands))

        def list_commands(self, ctx: Context) -> list[str]:
            return list(self.commands)

        def format_commands(self, ctx: Context, formatter: HelpFormatter) -> None:
            names = self.list_commands(ctx)
            if not names:
                return
            limit = formatter.width - 6 - max(len(n) for n in names)
            rows = [(n, text) for n in names if (text := self.commands.short_help(n, limit)) is not None]
            if rows:
                with formatter.section("Commands"):
                    formatter.write_dl(rows)

    return LazyGroup


def build_index(modules: Sequence[str]) -> dict[str, IndexEntry]:
    """Every visible command of ``modules``, in the order typer lists them, with the module that registers it."""
    owner = {name: module for module in modules for name in load_commands([module])}
    index: dict[str, IndexEntry] = {}
    for name, cmd in load_commands(modules).items():  # typer's order: commands, then groups
        if not cmd.hidden:
            # the help column uses the first paragraph only (click's make_default_short_help)
            text = cmd.short_help or (cmd.help or "").split("\n\n")[0]
            index[name] = (owner[name], text, bool(cmd.short_help))
    return index


def render_index(index: Mapping[str, IndexEntry]) -> str:
    import pprint

    return ('"""Generated by ``python -m cnilab.sim.cli.lazy --write`` from the command modules: do not edit.\n\n'
            "name -> (module that registers it, its help text, whether that text is its short_help);\n"
            '`cnilab --help` lists commands from here without importing them (sim/cli/lazy.py)."""\n\n'
            f"INDEX: dict[str, tuple[str, str, bool]] = {pprint.pformat(dict(index), width=110, sort_dicts=False)}\n")


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Regenerate sim/cli/command_index.py")
    parser.add_argument("--write", action="store_true", help="write the file (default: print it)")
    opts = parser.parse_args()
    from cnilab.sim.cli.main import COMMAND_MODULES

    text = render_index(build_index(COMMAND_MODULES))
    if opts.write:
        INDEX_FILE.write_text(text)
    else:
        print(text, end="")


if __name__ == "__main__":
    main()
