"""``offheap templates``: group the strings of dumps into templates, ranked by bytes."""

from __future__ import annotations

import argparse

from ..attribute import DEFAULT_MIN_LEN
from ..bulk import check_spec, expand_paths
from ..report.scan import render_templates
from ..templates import discover_templates, signatures_from_templates, signatures_toml
from . import Command
from .output import check_output, write_output


class TemplatesCommand(Command):
    name = "templates"
    help = "discover payload templates (variable parts masked) when you have no signatures"

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("paths", nargs="+", metavar="PATH", help="dump files or directories")
        p.add_argument("-n", "--min-len", type=int, default=DEFAULT_MIN_LEN,
                       help=f"minimum string length (default {DEFAULT_MIN_LEN})")
        p.add_argument("--top", type=int, default=20, help="templates to show (default 20)")
        p.add_argument("--write-signatures", metavar="FILE",
                       help="write the top templates as a signatures TOML to edit")
        p.add_argument("--types", type=int, default=10, help="templates turned into types (default 10)")
        p.add_argument("--force", action="store_true", help="overwrite an existing signatures file")

    def run(self, args: argparse.Namespace) -> int:
        if args.write_signatures:
            check_output(args.write_signatures, args.force)
        specs = expand_paths(args.paths)
        for spec in specs:
            check_spec(spec)
        templates = discover_templates([s.path for s in specs], min_len=args.min_len, top=args.top)
        print(render_templates(templates))
        if args.write_signatures:
            sigs = signatures_from_templates(templates, args.types)
            write_output(args.write_signatures, signatures_toml(sigs), args.force)
            print(f"wrote {len(sigs.types)} payload types to {args.write_signatures}")
        return 0


COMMAND = TemplatesCommand()
