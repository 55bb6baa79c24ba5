"""Re-renders the markdown summary and the plots from a results directory's JSON files
(e.g. with a Python that has matplotlib): `python render.py bench/results`."""

import json
import os
import sys

import chat_streams
import fanout
import json_path
import long_polling
import openai_streams
import plots

MODULES = {"json_path": json_path, "chat_streams": chat_streams,
           "openai_streams": openai_streams, "fanout": fanout, "long_polling": long_polling}


def header(runs):
    """The machine, and when (and at which commit, where recorded) each scenario ran: a
    directory may hold scenarios from different runs (`bench/run --only`)."""
    first = runs[0][1]
    line = f"Machine: {first['cpus']} CPUs ({first['cpu']}), kernel {first['kernel']}, mode {first['mode']}."
    for name, machine in runs:
        commit = f" at {machine['commit']}" if machine.get("commit") else ""
        line += f" {name}: {machine['date']}{commit}."
    return line


def main(out):
    sections, runs = [], []
    for name, module in MODULES.items():
        path = os.path.join(out, f"{name}.json")
        if not os.path.exists(path):
            continue
        with open(path) as f:
            result = json.load(f)
        if "machine" in result:
            runs.append((name, result["machine"]))
        section = module.markdown(result)
        if result["notes"]:
            section += "\n\nNotes:\n" + "\n".join(f"- {n}" for n in result["notes"])
        sections.append(section)
        plots.draw(result, out)
    with open(os.path.join(out, "summary.md"), "w") as f:
        f.write((header(runs) + "\n\n" if runs else "") + "\n\n".join(sections) + "\n")
    print("\n\n".join(sections))


if __name__ == "__main__":
    main(sys.argv[1])
