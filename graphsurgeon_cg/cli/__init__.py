"""Layer 5: the ``cgsurg`` command line, a thin layer over ``graphsurgeon_cg.api`` and the stages.

One module per command family (``surgery``: apply, diff, passes; ``stages``: prep, infer, eval,
bench, profile; ``flow``: export, run, demo; ``targets``: lint, targets); option groups shared by several commands are
declared once in ``options``; tables are rendered in ``tables``; errors become exit codes in
one place, ``CgsurgGroup.invoke``.

Exit codes: 0 success, 1 a pass failed or produced an invalid model, 2 bad input or usage,
3 a numeric check or accuracy gate failed (or ``apply --target`` left errors), 4/5 ``lint``
found warnings only / errors, 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from ..core.errors import CgsurgError

INTERRUPTED = 130


class CgsurgGroup(click.Group):
    """Maps every error to one line on stderr and its exit code; never a traceback
    (``CGSURG_DEBUG=1`` shows it)."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort):
            raise
        except click.ClickException as exc:  # usage errors: one line too, with where to look
            where = f"'{ctx.command_path} {ctx.invoked_subcommand or ''}".rstrip() + " --help'"
            click.echo(f"cgsurg: error: {exc.format_message()} (see {where})", err=True)
            raise SystemExit(exc.exit_code) from None
        except BrokenPipeError:  # e.g. piped into head: not an error of ours
            sys.stderr.close()
            raise SystemExit(0) from None
        except KeyboardInterrupt:
            click.echo("cgsurg: interrupted", err=True)
            raise SystemExit(INTERRUPTED) from None
        except CgsurgError as exc:
            if os.environ.get("CGSURG_DEBUG"):
                raise
            click.echo(f"cgsurg: error: {exc}", err=True)
            raise SystemExit(exc.exit_code) from None
        except Exception as exc:  # a bug of ours: still one line, with a way to see more
            if os.environ.get("CGSURG_DEBUG"):
                raise
            message = str(exc).strip().splitlines()
            click.echo(f"cgsurg: internal error: {type(exc).__name__}: {message[0] if message else ''} "
                       "(set CGSURG_DEBUG=1 for the traceback)", err=True)
            raise SystemExit(1) from None


@click.group(cls=CgsurgGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="cgsurg")
def cli() -> None:
    """Pluggable ONNX graph surgery for image models, every rewrite checked numerically.

    \b
    Start here (M.onnx: your model; IMGS: a folder of images):
      cgsurg demo                           the whole flow, nothing downloaded
      cgsurg lint M.onnx --target tensorrt  what the compiler will refuse
      cgsurg apply M.onnx -o O.onnx --target tensorrt      rewrite it, checked
      cgsurg prep IMGS -o D && cgsurg diff M.onnx O.onnx --data D/IMGS.info
    """
    # A run inside a longer-lived process (click's CliRunner, a notebook) never reaches the quick
    # exit: what an earlier command kept for it is let go here.
    EXIT_AT_ONCE.update(ready=False, keep=None)


# Set by a command whose output is written and flushed when nothing else is left to do (apply):
# the process then ends without freeing its object graph (2-3 s on a 100k-node model); "keep"
# holds what the command's return would otherwise free first (the result and its working graph).
EXIT_AT_ONCE: dict[str, Any] = {"ready": False, "keep": None}


def main() -> None:
    try:
        cli(prog_name="cgsurg")
    except SystemExit as exc:
        if EXIT_AT_ONCE["ready"] and exc.code in (0, None):
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)
        raise


from . import flow, stages, surgery, targets, tune  # noqa: E402,F401  (registers the commands)
