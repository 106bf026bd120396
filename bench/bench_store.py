"""Benchmark: `byok apply --no-check` of 2,000 keys and 10,000 features.

What is measured is the real CLI path: ``byok apply CONFIG --target URL
--no-check --source bench --format json`` as a subprocess, so the figures
include interpreter start, imports, validation of 2,000 Key files and one
FeatureMapping, secret resolution (``fromEnv``, no sops), the store
encryption of every secret, and the write. Targets:

- first apply to a fresh SQLite file: <= 5 s (best of N);
- a no-op re-apply: <= 1.5 s, and it writes nothing: the SQLite file's
  sha256 and mtime, and every row count and revision, are unchanged;
- first apply to a fresh PostgreSQL database (a server started here with
  initdb, on a unix socket and 127.0.0.1, free port): <= 2 x SQLite's;
- peak memory of any apply process (``ru_maxrss`` from ``os.wait4`` of that
  one child): <= 150 MB.

The keys come from environment variables holding fake canary keys, so no
secret is written to disk; every output is scanned for them.

Run: ``python bench/bench_store.py [--keys N] [--features N] [--runs N]``.
"""

from __future__ import annotations

import argparse
import base64
import functools
import glob
import hashlib
import json
import os
import pwd
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _common import (
    Run,
    byok_argv,
    canary,
    child_env,
    leak_line,
    precompile,
    run,
    show_run,
    tail,
    verdict,
)

from tests.fixtures.store import _bindir as find_bindir
from tests.fixtures.store import _free_port, _run_as

TARGET_FIRST = 5.0
TARGET_NOOP = 1.5
TARGET_PG_RATIO = 2.0
TARGET_RSS_MB = 150.0
FEATURES_PER_KEY_MODELS = ("gpt-4o", "gpt-4o-mini")

KEY_DOC = """\
apiVersion: byok/v1
kind: Key
metadata:
  name: key-{i:04d}
  description: Benchmark key {i}
  labels: {{team: team-{team}}}
spec:
  provider: openai
  apiKey: {{fromEnv: BENCH_KEY_{i:04d}}}
  openai: {{organization: org-bench, project: proj_bench{i}}}
  models: [gpt-4o, gpt-4o-mini]
"""
TABLES = ("byok_keys", "byok_features", "byok_applies")


@dataclass(frozen=True)
class Snapshot:
    """What a no-op apply must leave exactly as it was."""

    sha256: str
    mtime_ns: int
    size: int
    rows: tuple[tuple[str, int, int], ...]  # (table, count, sum of revisions)
    extra_files: tuple[str, ...]  # -wal, -journal, -shm left beside the db

    def describe(self) -> str:
        rows = ", ".join(f"{t} {c} rows rev-sum {r}" for t, c, r in self.rows)
        return (f"sha256 {self.sha256[:16]}...  mtime_ns {self.mtime_ns}  "
                f"size {self.size}\n      {rows}  extra files "
                f"{list(self.extra_files) or 'none'}")


def main(argv: Sequence[str] | None = None) -> int:
    global FORMAT
    raw = list(sys.argv[1:] if argv is None else argv)
    if raw[:1] == ["--phases"]:
        return phases_child(Path(raw[1]), raw[2], raw[3])
    args = _parse(argv)
    precompile()
    FORMAT = args.format
    print(f"measuring the CLI: byok {' '.join(apply_argv(Path('CONFIG'), 'URL'))}")
    work = Path(tempfile.mkdtemp(prefix="byoks-"))
    results: list[bool] = []
    try:
        config, env = generate(work, args.keys, args.features)
        rss: list[Run] = []
        sqlite_best = bench_sqlite(work, config, env, args, results, rss)
        bench_postgresql(work, config, env, args, sqlite_best, results, rss)
        bench_memory(work, config, env, rss, results)
        if args.profile or not all(results):
            phases(work, config, env)
            profile(work, config, env)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    # A miss is a finding to report, not a crash: the exit code stays 0.
    print(f"\noverall: {verdict(all(results))}")
    return 0


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=2000)
    parser.add_argument("--features", type=int, default=10000)
    parser.add_argument("--runs", type=int, default=3, help="best of N")
    parser.add_argument("--format", default="text",
                        choices=("text", "json", "markdown", "github"),
                        help="apply's output format (memory is also measured "
                        "once with json)")
    parser.add_argument("--profile", action="store_true",
                        help="always profile a first and a no-op apply")
    return parser.parse_args(argv)


# --- the configuration ------------------------------------------------------


def generate(root: Path, keys: int, features: int) -> tuple[Path, dict[str, str]]:
    """Key files (secrets from env variables) and one FeatureMapping."""
    started = time.perf_counter()
    config = root / "config"
    (config / "keys").mkdir(parents=True)
    env = child_env({
        "BYOK_STORE_KEY": base64.b64encode(os.urandom(32)).decode(),
        "GIT_CEILING_DIRECTORIES": str(root),  # no git lookups above the temp dir
    })
    for i in range(keys):
        (config / "keys" / f"key-{i:04d}.yaml").write_text(
            KEY_DOC.format(i=i, team=i % 13))
        env[f"BENCH_KEY_{i:04d}"] = canary.make_secret()
    (config / "mapping.yaml").write_text(mapping(keys, features))
    took = time.perf_counter() - started
    print(f"generated {keys} Key files and {features} features in {took:.1f}s")
    return config, env


def mapping(keys: int, features: int) -> str:
    lines = ["apiVersion: byok/v1", "kind: FeatureMapping",
             "metadata: {name: bench}", "spec:", "  features:"]
    for i in range(features):
        model = FEATURES_PER_KEY_MODELS[i % 2]
        lines.append(f"    feature-{i:05d}: {{key: key-{i % keys:04d}, "
                     f"model: {model}}}")
    return "\n".join(lines) + "\n"


FORMAT = "text"  # set from --format in main()


def apply_argv(config: Path, target: str, fmt: str | None = None) -> list[str]:
    return ["apply", str(config), "--target", target, "--no-check",
            "--source", "bench", "--format", fmt or FORMAT]


def apply(config: Path, target: str, env: dict[str, str],
          fmt: str | None = None) -> Run:
    argv = byok_argv(*apply_argv(config, target, fmt))
    return run(argv, env=env, cwd=config.parent)


def changes(done: Run) -> str:
    """The apply's summary line, or why there is none."""
    try:
        summary = str(json.loads(done.stdout).get("summary", ""))
    except ValueError:
        lines = [ln for ln in done.stdout.splitlines()
                 if ln.startswith(("Applied", "No changes"))]
        summary = lines[-1] if lines else "no summary line\n" + tail(done.stderr)
    size = len(done.stdout.encode())
    return f"{summary} (exit {done.code}, {size:,} bytes of output)"


# --- SQLite -----------------------------------------------------------------


def bench_sqlite(work: Path, config: Path, env: dict[str, str],
                 args: argparse.Namespace, results: list[bool],
                 rss: list[Run]) -> float:
    """First applies to fresh files, then no-op re-applies of the last one."""
    print(f"\nSQLite: first apply to a fresh file, best of {args.runs}")
    firsts = []
    for k in range(max(args.runs, 1)):
        db = work / f"sqlite-{k}.db"
        firsts.append(apply(config, f"sqlite:///{db}", env))
    best = min(firsts, key=lambda r: r.wall)
    show_run("byok apply (first, sqlite)", best, firsts)
    print(f"  {changes(firsts[-1])}")
    ok_first = all(r.code == 0 for r in firsts) and best.wall <= TARGET_FIRST
    print(f"  first apply {best.wall:.3f}s (target <= {TARGET_FIRST}s) "
          f"{verdict(ok_first)}")
    results.append(ok_first)
    rss.extend(firsts)
    bench_noop(db, config, env, args, results, rss)
    return best.wall


def bench_noop(db: Path, config: Path, env: dict[str, str],
               args: argparse.Namespace, results: list[bool],
               rss: list[Run]) -> None:
    print(f"\nSQLite: no-op re-apply of the same input, best of {args.runs}")
    before = snapshot(db)
    noops = [apply(config, f"sqlite:///{db}", env) for _ in range(max(args.runs, 1))]
    after = snapshot(db)
    best = min(noops, key=lambda r: r.wall)
    show_run("byok apply (no-op, sqlite)", best, noops)
    print(f"  {changes(noops[-1])}")
    print(f"    before: {before.describe()}")
    print(f"    after:  {after.describe()}")
    ok_time = all(r.code == 0 for r in noops) and best.wall <= TARGET_NOOP
    untouched = before == after
    print(f"  no-op re-apply {best.wall:.3f}s (target <= {TARGET_NOOP}s) "
          f"{verdict(ok_time)}")
    print(f"  wrote nothing (sha256, mtime, rows, revisions unchanged) "
          f"{verdict(untouched)}")
    results += [ok_time, untouched]
    rss.extend(noops)


def snapshot(db: Path) -> Snapshot:
    """Hash and stat the file first, then read rows through a read-only
    connection (``mode=ro`` cannot write, so it cannot alter the file)."""
    data = db.read_bytes()
    stat = db.stat()
    with _ro(db) as conn:
        rows = tuple(
            (t, *conn.execute(
                f"SELECT count(*), coalesce(sum(revision), 0) FROM {t}"
                if t != "byok_applies" else
                f"SELECT count(*), coalesce(max(id), 0) FROM {t}").fetchone())
            for t in TABLES
        )
    extra = tuple(sorted(os.path.basename(p) for p in glob.glob(f"{db}-*")))
    return Snapshot(hashlib.sha256(data).hexdigest(), stat.st_mtime_ns,
                    stat.st_size, rows, extra)


@contextmanager
def _ro(db: Path) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        yield conn
    finally:
        conn.close()


# --- PostgreSQL -------------------------------------------------------------


def bench_postgresql(work: Path, config: Path, env: dict[str, str],
                     args: argparse.Namespace, sqlite_best: float,
                     results: list[bool], rss: list[Run]) -> None:
    print(f"\nPostgreSQL: first apply to a fresh database, best of {args.runs}")
    bindir = pg_bindir()
    if bindir is None:
        print("  SKIP: no PostgreSQL binaries (pg_config --bindir, "
              "/usr/lib/postgresql/*/bin); install postgresql to run this part")
        return
    with pg_server(bindir) as server:
        firsts = []
        for k in range(max(args.runs, 1)):
            url = server.create_database(f"bench{k}")
            firsts.append(apply(config, url, env))
        best = min(firsts, key=lambda r: r.wall)
        show_run("byok apply (first, postgresql)", best, firsts)
        print(f"  {changes(firsts[-1])}")
        noop = apply(config, url, env)
        print(f"  no-op re-apply on postgresql (no target): {noop.wall:.3f}s, "
              f"{changes(noop)}")
        print(f"  rows: {server.rows(url)}")
    ratio = best.wall / sqlite_best
    ok = all(r.code == 0 for r in firsts) and ratio <= TARGET_PG_RATIO
    print(f"  postgresql/sqlite first apply = {best.wall:.3f}/{sqlite_best:.3f} "
          f"= {ratio:.2f} (target <= {TARGET_PG_RATIO}) {verdict(ok)}")
    results.append(ok)
    rss.extend([*firsts, noop])


@dataclass(frozen=True)
class PgServer:
    host: str
    port: int
    user: str

    def dsn(self, database: str) -> str:
        return f"host={self.host} port={self.port} user={self.user} dbname={database}"

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql://{self.user}@{self.host}:{self.port}/{name}"

    def rows(self, url: str) -> str:
        import psycopg

        with psycopg.connect(self.dsn(url.rsplit("/", 1)[1])) as conn:
            counts = [
                (t, conn.execute(f"SELECT count(*) FROM {t}").fetchone())
                for t in TABLES
            ]
        return ", ".join(f"{t} {c[0] if c else '?'}" for t, c in counts)


def pg_bindir() -> Path | None:
    """The PostgreSQL binaries, found as the test fixture finds them."""
    return find_bindir()


@contextmanager
def pg_server(bindir: Path) -> Iterator[PgServer]:
    """initdb and postgres in a temp folder, stopped and removed on exit."""
    prefix = _run_as()
    root = Path(tempfile.mkdtemp(prefix="byok-pg-"))
    data, sock = root / "data", root / "sock"
    for folder in (data, sock, root):
        folder.mkdir(exist_ok=True)
        if prefix:
            info = pwd.getpwnam(prefix[2])
            os.chown(folder, info.pw_uid, info.pw_gid)
    proc = None
    try:
        subprocess.run(
            [*prefix, str(bindir / "initdb"), "-D", str(data), "-U", "byok",
             "--auth=trust", "-E", "UTF8", "--no-sync"],
            check=True, capture_output=True, timeout=120)
        port = _free_port()
        # Durable settings on purpose: the store's commit cost is part of
        # what is measured, unlike the test fixture's fsync=off.
        proc = subprocess.Popen(
            [*prefix, str(bindir / "postgres"), "-D", str(data), "-k", str(sock),
             "-p", str(port), "-c", "listen_addresses=127.0.0.1"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        server = PgServer("127.0.0.1", port, "byok")
        _wait_ready(server, proc)
        yield server
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(root, ignore_errors=True)


def _wait_ready(server: PgServer, proc: subprocess.Popen[bytes]) -> None:
    import psycopg

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("postgres exited during startup")
        try:
            psycopg.connect(server.dsn("postgres"), connect_timeout=2).close()
            return
        except psycopg.OperationalError:
            time.sleep(0.1)
    raise RuntimeError("postgres did not accept connections within 30s")


# --- memory and leaks -------------------------------------------------------


def bench_memory(work: Path, config: Path, env: dict[str, str],
                 runs: list[Run], results: list[bool]) -> None:
    print("\npeak memory of the apply processes (ru_maxrss of each)")
    peak = max(runs, key=lambda r: r.maxrss_mb)
    ok = peak.maxrss_mb <= TARGET_RSS_MB
    label = peak.argv[peak.argv.index("--target") + 1].split(":")[0]
    print(f"  --format {FORMAT}: max {peak.maxrss_mb:.1f} MB over {len(runs)} "
          f"applies (largest: {label}) (target <= {TARGET_RSS_MB:.0f} MB) "
          f"{verdict(ok)}")
    results.append(ok)
    if FORMAT != "json":
        done = apply(config, f"sqlite:///{work / 'json.db'}", env, fmt="json")
        runs.append(done)
        ok_json = done.code == 0 and done.maxrss_mb <= TARGET_RSS_MB
        print(f"  --format json, first apply to sqlite: {done.maxrss_mb:.1f} MB "
              f"(target <= {TARGET_RSS_MB:.0f} MB) {verdict(ok_json)}; "
              f"{changes(done)}")
        results.append(ok_json)
    leak_ok, line = leak_line(runs)
    print(line)
    results.append(leak_ok)


# --- where the time goes ----------------------------------------------------


PHASES = (
    ("validate", "byok_reconcile.validate", "validate_paths"),
    ("resolve secrets", "byok_reconcile.keysource", "resolve_secrets"),
    ("open store", "byok_reconcile.store", "open_target"),
    ("read store state", "byok_reconcile.store.sql", "load_state"),
    ("make plan (diff)", "byok_reconcile.reconcile", "make_plan"),
    ("build writes (encrypt)", "byok_reconcile.reconcile", "build_writes"),
    ("SQL write", "byok_reconcile.store.sql", "SqlTransaction.write"),
    ("Plan.digest", "byok_reconcile.reconcile", "Plan.digest"),
    ("render report", "byok_reconcile.output", "render"),
)


def phases(work: Path, config: Path, env: dict[str, str]) -> None:
    """A first and a no-op apply in a child that times each step."""
    target = f"sqlite:///{work / 'phases.db'}"
    for label in ("first apply", "no-op re-apply"):
        argv = [sys.executable, str(Path(__file__).resolve()), "--phases",
                str(config), target, FORMAT]
        done = run(argv, env=env, cwd=config.parent)
        print(f"\nsteps of the {label}, in process, no profiler "
              f"(child exit {done.code}, wall {done.wall:.2f}s, "
              f"cpu {done.cpu:.2f}s):")
        print(done.stdout.rstrip() or tail(done.stderr))


def phases_child(config: Path, target: str, fmt: str) -> int:
    """Run apply in this process with a timer around each step of PHASES.

    Steps nest (Plan.digest runs inside apply and the report); the rest of
    the wall time is interpreter start and imports.
    """
    import importlib

    totals: dict[str, list[float]] = {}
    for label, module_name, attr in PHASES:
        owner: object = importlib.import_module(module_name)
        name = attr
        if "." in attr:
            cls, name = attr.split(".")
            owner = getattr(owner, cls)
        setattr(owner, name, _timed(getattr(owner, name), totals.setdefault(
            label, [0, 0.0, 0.0])))
    from byok_reconcile import output
    from byok_reconcile.commands import apply as apply_cmd

    started, cpu0 = time.perf_counter(), time.process_time()
    report = apply_cmd.run([str(config)], target, source="bench")
    output.render(report, fmt)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu0
    for label, (calls, t_wall, t_cpu) in totals.items():
        print(f"  {label:<24} {int(calls):3d} calls  wall {t_wall:6.3f}s  "
              f"cpu {t_cpu:6.3f}s")
    print(f"  {'whole apply.run + render':<24}            wall {wall:6.3f}s  "
          f"cpu {cpu:6.3f}s")
    return report.exit_code


def _timed(func: Any, slot: list[float]) -> Any:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started, cpu0 = time.perf_counter(), time.process_time()
        try:
            return func(*args, **kwargs)
        finally:
            slot[0] += 1
            slot[1] += time.perf_counter() - started
            slot[2] += time.process_time() - cpu0

    return wrapper


def profile(work: Path, config: Path, env: dict[str, str]) -> None:
    """cProfile a first and a no-op apply; print byok's heaviest functions.

    Profiling inflates every figure about 1.5 to 2 times; read the shares.
    """
    import pstats

    target = f"sqlite:///{work / 'profile.db'}"
    for label in ("first apply", "no-op re-apply"):
        out = work / f"{label[:5]}.prof"
        argv = [sys.executable, "-m", "cProfile", "-o", str(out),
                "-m", "byok_reconcile", *apply_argv(config, target)]
        done = run(argv, env=env, cwd=config.parent)
        print(f"\nprofile of the {label} (cProfile, exit {done.code}, "
              f"{done.wall:.2f}s under the profiler): cumulative seconds")
        table = pstats.Stats(str(out)).stats  # type: ignore[attr-defined]
        rows = [
            (cum, f"{Path(file).name}:{line}({name})")
            for (file, line, name), (_, _, _, cum, _) in table.items()
            if "byok_reconcile" in file and name not in ("<module>", "wrapper")
        ]
        for cum, where in sorted(rows, reverse=True)[:14]:
            print(f"  {cum:7.3f}s  {where}")


if __name__ == "__main__":
    sys.exit(main())
