"""``maxrf calibrate DATASTACK|SPECTRUM``: energy calibration from the spectra alone."""

from __future__ import annotations

from pathlib import Path

from maxrf.cli._common import print_json


def add_parser(sub):
    p = sub.add_parser("calibrate", help="find the energy calibration of a datastack or a spectrum")
    p.add_argument("source", help="a .datastack folder or a point spectrum (.msa, .spx)")
    p.add_argument("--anode", default="Rh", help="X-ray tube anode element (default Rh)")
    p.add_argument("--tube-kv", type=float, default=40.0, help="tube voltage, kV (default 40)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--manual", metavar="CH1:KEV1,CH2:KEV2", help="two channel:keV pairs")
    group.add_argument("--range", dest="keV_range", metavar="START:STOP",
                       help="energies (keV) of the first and last channel")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    return p


def run(args) -> int:
    from maxrf.calibration import calibrate_datastack, calibrate_spectrum

    path = Path(args.source)
    if path.is_dir():
        from maxrf import DataStack

        ds = DataStack(path)
        cal = calibrate_datastack(ds, anode=args.anode, tube_kv=args.tube_kv,
                                  manual=args.manual, keV_range=args.keV_range)
        header = ds.metadata.get("header_calibration")
    else:
        cal, header = calibrate_spectrum(path, anode=args.anode, tube_kv=args.tube_kv,
                                         manual=args.manual, keV_range=args.keV_range)
    out = {
        "gain_keV": cal.gain_keV,
        "offset_keV": cal.offset_keV,
        "method": cal.method,
        "theta_deg": cal.theta_deg,
        "peaks": [{"name": p.name, "channel": p.channel, "keV": p.keV, "residual_eV": p.residual_eV}
                  for p in cal.peaks if p.used],
        "header": None if header is None else {"gain_keV": header[0], "offset_keV": header[1]},
        "quality": cal.quality,
        "checks": cal.checks,
        "residuals_eV": cal.residuals_eV,
    }
    if args.json:
        print_json(out)
        return 0
    print(f"E = {cal.offset_keV:.5f} + {cal.gain_keV:.7f} x channel keV ({cal.method})")
    if cal.quality is not None:
        print(f"  verdict: {cal.quality}" + {"good": " (every check passed)",
                                             "doubtful": " -- check it before trusting the energies",
                                             "failed": " -- do not trust these energies; give --manual pairs"
                                             }.get(cal.quality, ""))
        for c in cal.checks:
            print(f"    [{'ok' if c['passed'] else 'FAILED'}] {c['name']}: {c['message']}")
    for p in out["peaks"]:
        print(f"  {p['name']:<12} channel {p['channel']:9.2f}  {p['keV']:7.3f} keV  "
              f"residual {p['residual_eV']:+6.1f} eV")
    if cal.theta_deg is not None:
        print(f"  scattering angle from the Compton shift: {cal.theta_deg:.1f} deg")
    if header is not None:
        print(f"  file header says: E = {header[1]:.5f} + {header[0]:.7f} x channel keV (compared, not used)")
    return 0
