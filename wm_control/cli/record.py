"""``wm-control record``: its stop signals are caught before anything slow is imported (the flag
parser included), so a Ctrl-C or SIGTERM at any moment closes a valid bag and exits 0."""

from __future__ import annotations


def cmd_record(argv: list[str]) -> int:
    from wm_control.data.bags import StopSignals, record

    with StopSignals() as stop:
        import json

        from wm_control.cli.data import RecordOptions
        from wm_control.cli.flags import parse

        o, _ = parse("wm-control record", argv, RecordOptions)
        print(json.dumps(record(o.out, o.topics, o.duration, overwrite=o.overwrite, stop=stop), indent=2))
    return 0
