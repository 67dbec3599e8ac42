"""rudp goodput over a lossy 10 Mbit/s, 40 ms RTT path, in the simulator.

Each congestion controller runs the built-in ``lossy-link`` scenario: four independent
sender/receiver pairs side by side (loss 0, 1 %, 5 %, Gilbert-Elliott bursts on the data
direction), 10 Mbit/s bottleneck with a drop-tail queue of one bandwidth-delay product
(50 kB), 40 ms round trip, exact event times. Goodput is measured in steady state (after
``--warmup`` virtual seconds) as a fraction of the 10 Mbit/s link rate, and printed beside
the Mathis et al. bound for Reno, MSS/RTT * sqrt(3/2) / sqrt(p).

    python -m benchmarks.rudp_lossy [--quick] [--duration S]

Last line: one JSON object with default_loss_0, default_loss_1pct, default_loss_5pct,
default_burst and the same four with newreno_.
"""

from __future__ import annotations

import argparse
import json
import math
import time

from p2pkit.simulator import run_file

LINK_BPS = 10e6
RTT = 0.040
PROFILES = {  # sender group in lossy-link.toml -> key suffix, loss rate for Mathis
    "loss0-0": ("loss_0", 0.0),
    "loss1-0": ("loss_1pct", 0.01),
    "loss5-0": ("loss_5pct", 0.05),
    "burst-0": ("burst", 0.005 / (0.005 + 0.25)),
}
CONTROLLERS = ("default", "newreno")


def mathis_fraction(loss: float, mss: int) -> float | None:
    if loss <= 0:
        return None
    return min(1.0, mss * 8 / RTT * math.sqrt(1.5) / math.sqrt(loss) / LINK_BPS)


def run_controller(controller: str, duration: float, warmup: float, seed: int) -> dict[str, float]:
    overrides = [f"scenario.duration={duration}", "workload.0.bytes=1_000_000_000"]
    for index in range(5):  # every group: senders and the sinks
        overrides.append(f'groups.{index}.config.rudp.congestion="{controller}"')
    started = time.perf_counter()
    _sim, report = run_file("lossy-link", seed=seed, overrides=overrides, plots=False)
    wall = time.perf_counter() - started
    out: dict[str, float] = {}
    for flow in report["results"].get("bulk", []):
        rows = report["series"].get(f"goodput.{flow['from']}_bps", [])
        window = [bps for t, bps in rows if warmup <= t < duration - 1]
        goodput = sum(window) / len(window) if window else 0.0
        suffix, _loss = PROFILES[flow["from"]]
        out[suffix] = goodput / LINK_BPS
        if flow.get("error"):
            print(f"  {controller} {flow['from']}: {flow['error']}")
    print(f"  {controller}: {duration:g} virtual s in {wall:.1f} wall s, "
          f"{report['network']['datagrams_delivered']} datagrams, drops {report['network']['drops']}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter run")
    parser.add_argument("--duration", type=float, help="virtual seconds per controller")
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--mss", type=int, default=1372, help="payload bytes for the Mathis bound")
    args = parser.parse_args()
    duration = args.duration or (15.0 if args.quick else 40.0)
    results: dict[str, float | None] = {}
    table: dict[str, dict[str, float]] = {}
    for controller in CONTROLLERS:
        table[controller] = run_controller(controller, duration, args.warmup, args.seed)
    print(f"\n{'profile':<12}" + "".join(f"{c:>10}" for c in CONTROLLERS) + f"{'Mathis':>10}")
    for _group, (suffix, loss) in PROFILES.items():
        bound = mathis_fraction(loss, args.mss)
        print(f"{suffix:<12}" + "".join(f"{table[c].get(suffix, 0.0):>10.3f}" for c in CONTROLLERS)
              + (f"{bound:>10.3f}" if bound is not None else f"{'-':>10}"))
        for controller in CONTROLLERS:
            results[f"{controller}_{suffix}"] = round(table[controller].get(suffix, 0.0), 4)
        results[f"mathis_{suffix}"] = None if bound is None else round(bound, 4)
    results["duration_s"] = duration
    print(json.dumps(results))


if __name__ == "__main__":
    main()
