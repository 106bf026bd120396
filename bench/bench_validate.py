"""Benchmark: `byok validate` against check-jsonschema on the same files.

(a) ``byok validate examples/config`` against ``check-jsonschema
    --schemafile schemas/key.schema.json`` on the same YAML files: target a
    ratio of at most 0.5.
(b) 5,000 generated Key files in sops-encrypted form plus one FeatureMapping
    of 5,000 features: ``byok validate`` against check-jsonschema on the
    5,000 Key files alone: target at most 0.2.

Every command runs as a subprocess; the best of N wall times counts. The
Key files are fabricated, not encrypted: the validator reads sops metadata
but never decrypts, so ``ENC[...]`` values of the right shape suffice and
sops need not run 5,000 times. check-jsonschema rejects the ``sops:`` block
(the Key schema does not allow it) and the non-Key documents in (a); that is
expected, it still does the whole work. Nothing leaves the machine.

Run: ``python bench/bench_validate.py [--runs N] [--keys N] [--keep DIR]``.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
KEY_SCHEMA = REPO / "schemas" / "key.schema.json"
EXAMPLES = REPO / "examples" / "config"
# A well-formed age recipient; nothing is encrypted for it.
RECIPIENT = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"
TARGET_EXAMPLES = 0.5
TARGET_LARGE = 0.2


@dataclass(frozen=True)
class Timing:
    """Wall times of each run, and the CPU time (user + system) of the
    fastest: CPU time moves less than wall time on a busy machine."""

    label: str
    best: float
    runs: tuple[float, ...]
    cpu: float
    code: int


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _common import precompile

    precompile()
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="byokb-"))
    try:
        ok_a = bench_examples(args.runs)
        ok_b = bench_large(work, args.keys, args.runs)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0 if ok_a and ok_b else 1


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="best of N runs")
    parser.add_argument("--keys", type=int, default=5000, help="generated keys")
    parser.add_argument("--keep", help="generate into DIR and keep it")
    return parser.parse_args(argv)


# --- the two comparisons -------------------------------------------------


def bench_examples(runs: int) -> bool:
    files = sorted(str(p) for p in EXAMPLES.rglob("*.y*ml") if _visible(p))
    byok = measure("byok validate examples/config", _byok(str(EXAMPLES)), runs)
    cjs = measure(f"check-jsonschema ({len(files)} files)", _cjs(files), runs)
    return report("(a) examples/config", byok, cjs, TARGET_EXAMPLES)


def bench_large(work: Path, count: int, runs: int) -> bool:
    started = time.perf_counter()
    key_files = generate(work, count)
    took = time.perf_counter() - started
    print(f"generated {count} Key files and 1 FeatureMapping in {took:.1f}s")
    byok = measure(f"byok validate ({count} keys + mapping)", _byok(str(work)), runs)
    cjs = measure(f"check-jsonschema ({count} Key files)", _cjs(key_files), runs)
    return report(f"(b) {count} keys", byok, cjs, TARGET_LARGE)


def _visible(path: Path) -> bool:
    rel = path.relative_to(EXAMPLES)
    return not any(part.startswith(".") for part in rel.parts)


def _script(name: str) -> str | None:
    """The console script next to this interpreter, else on PATH.

    The interpreter's own bin folder comes first so that a version manager's
    shim (pyenv runs a shell and more per call) is not timed for one tool.
    """
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.is_file() else shutil.which(name)


def _byok(path: str) -> list[str]:
    exe = _script("byok")
    head = [exe] if exe else [sys.executable, "-m", "byok_reconcile"]
    return [*head, "validate", "-q", path]


def _cjs(files: Sequence[str]) -> list[str]:
    exe = _script("check-jsonschema")
    if exe is None:
        sys.exit("check-jsonschema is not installed: pip install check-jsonschema")
    return [exe, "--schemafile", str(KEY_SCHEMA), *files]


def measure(label: str, argv: list[str], runs: int) -> Timing:
    """Best wall time of ``runs`` runs of ``argv``, output discarded."""
    times: list[float] = []
    cpus: list[float] = []
    code = 0
    for _ in range(runs):
        before = _child_cpu()
        start = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, cwd=REPO, check=False)
        times.append(time.perf_counter() - start)
        cpus.append(_child_cpu() - before)
        code = done.returncode
    return Timing(label, min(times), tuple(times), min(cpus), code)


def _child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def report(title: str, byok: Timing, cjs: Timing, target: float) -> bool:
    ratio = byok.best / cjs.best
    ok = ratio <= target
    print(f"\n{title}")
    for t in (byok, cjs):
        runs = ", ".join(f"{r:.3f}" for r in t.runs)
        print(f"  {t.label:<42} wall {t.best:7.3f}s  cpu {t.cpu:7.3f}s  exit {t.code}")
        print(f"  {'':<42} runs {runs}")
    verdict = "PASS" if ok else "FAIL"
    print(f"  wall ratio byok/cjs = {ratio:.3f} (target <= {target}) {verdict}")
    print(f"  cpu ratio (for reference) = {byok.cpu / cjs.cpu:.3f}")
    return ok


# --- generated configuration ---------------------------------------------


def generate(root: Path, count: int) -> list[str]:
    """``count`` Key files under root/keys, one mapping, one policy."""
    keys = root / "keys"
    keys.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = keys / f"key-{i:05d}.yaml"
        path.write_text(key_document(i))
        paths.append(str(path))
    (root / "mapping.yaml").write_text(mapping_document(count))
    (root / "policy.yaml").write_text(POLICY)
    return paths


def _enc(seed: str, size: int) -> str:
    """An ``ENC[...]`` value of sops's shape; its bytes are a hash, not data."""
    raw = hashlib.sha256(seed.encode()).digest() * (size // 32 + 1)
    data = base64.b64encode(raw[:size]).decode()
    iv = base64.b64encode(raw[:32]).decode()
    tag = base64.b64encode(raw[:16]).decode()
    return f"ENC[AES256_GCM,data:{data},iv:{iv},tag:{tag},type:str]"


def _sops_block(i: int) -> str:
    armour = base64.b64encode(hashlib.sha512(str(i).encode()).digest() * 3).decode()
    lines = [armour[j : j + 64] for j in range(0, len(armour), 64)]
    body = "\n".join(f"            {line}" for line in lines)
    return (
        "sops:\n"
        "    age:\n"
        f"        - recipient: {RECIPIENT}\n"
        "          enc: |\n"
        "            -----BEGIN AGE ENCRYPTED FILE-----\n"
        f"{body}\n"
        "            -----END AGE ENCRYPTED FILE-----\n"
        '    lastmodified: "2025-01-01T00:00:00Z"\n'
        f"    mac: {_enc(f'mac{i}', 64)}\n"
        "    encrypted_regex: ^apiKey$\n"
        "    version: 3.9.4\n"
    )


def _provider_block(i: int) -> str:
    kind = i % 10
    if kind < 6:
        return (
            "    provider: openai\n"
            f"    apiKey: {_enc(f'key{i}', 48)}\n"
            "    openai:\n"
            f"        organization: org-bench{i % 7}\n"
            f"        project: proj_bench{i}\n"
            "    models:\n"
            "        - gpt-4o\n"
            "        - gpt-4o-mini\n"
        )
    if kind < 9:
        return (
            "    provider: azure_openai\n"
            f"    apiKey: {_enc(f'key{i}', 32)}\n"
            "    azure_openai:\n"
            f"        endpoint: https://bench-{i}.openai.azure.com/\n"
            '        apiVersion: "2024-10-21"\n'
            "        deployments:\n"
            "            gpt4o-prod:\n"
            "                model: gpt-4o\n"
            "            embed-prod:\n"
            "                model: text-embedding-3-small\n"
        )
    return (
        "    provider: openai_compatible\n"
        f"    apiKey: {_enc(f'key{i}', 40)}\n"
        "    openai_compatible:\n"
        f"        baseUrl: https://llm-{i}.internal.example.com/v1\n"
        "    models:\n"
        "        - meta-llama/Llama-3.1-8B-Instruct\n"
    )


def key_document(i: int) -> str:
    return (
        "apiVersion: byok/v1\n"
        "kind: Key\n"
        "metadata:\n"
        f"    name: key-{i:05d}\n"
        f"    description: Generated benchmark key number {i}\n"
        "    labels:\n"
        f"        team: team-{i % 13}\n"
        "spec:\n" + _provider_block(i) + _sops_block(i)
    )


def mapping_document(count: int) -> str:
    lines = [
        "apiVersion: byok/v1",
        "kind: FeatureMapping",
        "metadata: {name: bench}",
        "spec:",
        "  features:",
    ]
    for i in range(count):
        kind = i % 10
        if 6 <= kind < 9:
            target = "deployment: gpt4o-prod"
        elif kind == 9:
            target = "model: meta-llama/Llama-3.1-8B-Instruct"
        else:
            target = "model: gpt-4o"
        lines.append(f"    feature-{i:05d}: {{key: key-{i:05d}, {target}}}")
    return "\n".join(lines) + "\n"


POLICY = """\
apiVersion: byok/v1
kind: Policy
metadata: {name: bench}
spec:
  allowedHosts: ["*.internal.example.com"]
"""


if __name__ == "__main__":
    sys.exit(main())
