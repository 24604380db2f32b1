"""Log pattern mining: accuracy and speed on loghub-2k, against plain Drain3 in the same run.

    python bench/log_patterns.py                      # datasets in ../shared/datasets/loghub2k
    python bench/log_patterns.py --data DIR --repeat 5

For every system, one configuration for all (no per-system tuning):

* grouping accuracy (GA) and parsing accuracy (PA) on the corrected labels, as the loghub
  benchmark defines them (`pantau.logs.evaluation`);
* lines/s mining the 2,000 lines from a fresh miner (best of `--repeat`): a cold start, every
  template new, the hardest case for speed;
* the same for the baseline, Drain3's `TemplateMiner` with its default settings and the masks
  of its example config (IP, hex, numbers), which the dataset README quotes (average GA 0.807).

Then a steady-state figure: the 16,000 lines of all systems, as 8 services, replayed
`--steady` times into one miner that has seen them (what a running hub mostly does).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from pantau.logs.evaluation import LOGHUB_SYSTEMS, grouping_accuracy, load_loghub, parsing_accuracy
from pantau.logs.patterns import PatternMiner

ROOT = Path(__file__).resolve().parent.parent


def drain3_baseline():
    """Drain3's TemplateMiner, default config plus the masks of drain3's own example ini."""
    from drain3 import TemplateMiner
    from drain3.masking import MaskingInstruction
    from drain3.template_miner_config import TemplateMinerConfig

    b, e = r"((?<=[^A-Za-z0-9])|^)", r"((?=[^A-Za-z0-9])|$)"
    cfg = TemplateMinerConfig()
    cfg.masking_instructions = [
        MaskingInstruction(b + r"(([0-9a-f]{2,}:){3,}([0-9a-f]{2,}))" + e, "ID"),
        MaskingInstruction(b + r"(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})" + e, "IP"),
        MaskingInstruction(b + r"([0-9a-f]{6,} ?){3,}" + e, "SEQ"),
        MaskingInstruction(b + r"([0-9A-F]{4} ?){4,}" + e, "SEQ"),
        MaskingInstruction(b + r"(0x[a-f0-9A-F]+)" + e, "HEX"),
        MaskingInstruction(b + r"([\-\+]?\d+)" + e, "NUM"),
        MaskingInstruction(r"(?<=executed cmd )(\".+?\")", "CMD"),
    ]
    return TemplateMiner(config=cfg)


def run_pantau(lines: list[str]) -> tuple[list[str], list[str], float]:
    miner = PatternMiner()
    started = time.perf_counter()
    ids = [miner.observe("svc", line, 0) for line in lines]
    elapsed = time.perf_counter() - started
    templates = {p.id: p.template for p in miner.patterns()}
    return ids, [templates[i] for i in ids], elapsed


def run_drain3(lines: list[str]) -> tuple[list[int], list[str], float]:
    miner = drain3_baseline()
    started = time.perf_counter()
    ids = [miner.add_log_message(line)["cluster_id"] for line in lines]
    elapsed = time.perf_counter() - started
    templates = {c.cluster_id: c.get_template() for c in miner.drain.clusters}
    return ids, [templates[i] for i in ids], elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "datasets" / "loghub2k")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per system (best is kept)")
    parser.add_argument("--steady", type=int, default=5, help="replays of all lines for the steady-state figure")
    args = parser.parse_args()
    if not args.data.is_dir():
        print(f"no loghub2k dataset at {args.data} (use --data)", file=sys.stderr)
        return 2

    print(f"{'system':<10} {'GA':>6} {'PA':>6} {'lines/s':>9} | {'drain3 GA':>9} {'PA':>6} {'lines/s':>9} | speed x")
    rows = []
    datasets = [load_loghub(args.data, system) for system in LOGHUB_SYSTEMS]
    for data in datasets:
        n = len(data.content)
        ours = [run_pantau(data.content) for _ in range(args.repeat)]
        base = [run_drain3(data.content) for _ in range(args.repeat)]
        ids, templates, _ = ours[0]
        bids, btemplates, _ = base[0]
        row = (data.system,
               grouping_accuracy(data.event_ids, ids), parsing_accuracy(data.templates, templates),
               n / min(r[2] for r in ours),
               grouping_accuracy(data.event_ids, bids), parsing_accuracy(data.templates, btemplates),
               n / min(r[2] for r in base))
        rows.append(row)
        print(f"{row[0]:<10} {row[1]:>6.4f} {row[2]:>6.4f} {row[3]:>9,.0f} | {row[4]:>9.4f} {row[5]:>6.4f} "
              f"{row[6]:>9,.0f} | {row[3] / row[6]:>6.2f}")
    mean = [statistics.fmean(r[i] for r in rows) for i in range(1, 7)]
    total = sum(len(d.content) for d in datasets)
    ours_rate = total / sum(total / len(rows) / r[3] for r in rows)  # all lines / all time
    base_rate = total / sum(total / len(rows) / r[6] for r in rows)
    print(f"{'average':<10} {mean[0]:>6.4f} {mean[1]:>6.4f} {ours_rate:>9,.0f} | {mean[3]:>9.4f} {mean[4]:>6.4f} "
          f"{base_rate:>9,.0f} | {ours_rate / base_rate:>6.2f}")

    stream = [(d.system, line) for d in datasets for line in d.content]
    miner, baseline = PatternMiner(), {d.system: drain3_baseline() for d in datasets}
    for service, line in stream:  # warm: every template known
        miner.observe(service, line, 0)
        baseline[service].add_log_message(line)
    started = time.perf_counter()
    for _ in range(args.steady):
        for service, line in stream:
            miner.observe(service, line, 0)
    ours_steady = len(stream) * args.steady / (time.perf_counter() - started)
    started = time.perf_counter()
    for _ in range(args.steady):
        for service, line in stream:
            baseline[service].add_log_message(line)
    base_steady = len(stream) * args.steady / (time.perf_counter() - started)
    print(f"steady state, {len(stream) * args.steady:,} lines over 8 services: pantau {ours_steady:,.0f} lines/s, "
          f"drain3 {base_steady:,.0f} lines/s ({ours_steady / base_steady:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
