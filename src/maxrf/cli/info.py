"""``maxrf info DATASTACK``: shape, dtype, chunking, compression, calibration, layers."""

from __future__ import annotations

from maxrf.cli._common import print_json


def add_parser(sub):
    p = sub.add_parser("info", help="describe a .datastack",
                       description="Shape, storage, calibration, layers, identified elements "
                                   "and the runs the stored element maps come from.")
    p.add_argument("datastack", help="the .datastack folder")
    p.add_argument("--json", action="store_true", help="machine-readable output (default: text)")
    return p


def run(args) -> int:
    from maxrf.evidence import stored_summary
    from maxrf.info import describe
    from maxrf.store import DataStack

    info = describe(args.datastack)
    info["identified"] = stored_summary(DataStack(args.datastack))
    if args.json:
        print_json(info)
        return 0
    h, w, c = info["shape"]
    print(f"{info['path']}")
    print(f"  cube         {h} x {w} pixels x {c} channels, {info['dtype']}")
    print(f"  chunks       {info['chunks']}  ({info['n_chunks']} chunks)")
    print(f"  stored       {info['stored_bytes'] / 2**20:.1f} MiB, "
          f"compression ratio {info['compression_ratio']:.2f}")
    cal = info["calibration"]
    if cal:
        print(f"  calibration  E = {cal['offset_keV']:.4f} + {cal['gain_keV']:.6f} * channel keV "
              f"({cal.get('method', '?')})")
        if cal.get("quality"):
            failed = [c["message"] for c in cal.get("checks", []) if not c.get("passed")]
            print(f"  verdict      {cal['quality']}" + (": " + "; ".join(failed) if failed else ""))
    else:
        print("  calibration  none (run 'maxrf calibrate')")
    for name, shapes in info["layer_shapes"].items():
        print(f"  layer        {name}: " + ", ".join(f"{k} {v}" for k, v in shapes.items()))
    ident = info["identified"]
    if ident["present"] or ident["possible"]:
        print(f"  elements     {', '.join(ident['present']) or '-'}"
              + (f"; possible: {', '.join(e + '?' for e in ident['possible'])}"
                 if ident["possible"] else ""))
    for run, els in ident["element_map_runs"].items():  # a possible element stays 'Re?'
        print(f"  map run      {run}: "
              + ", ".join(el + ("?" if el in ident["possible"] else "") for el in els))
    src = info["provenance"].get("source", {})
    size = src.get("raw_bytes", src.get("bytes", 0))
    print(f"  source       {src.get('rpl') or src.get('path', '?')} ({src.get('format', 'ripple')}, "
          f"{size / 2**20:.1f} MiB)")
    print(f"  created      {info['created']} by maxrf {info['maxrf_version']}")
    return 0
