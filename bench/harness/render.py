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


def main(out):
    sections = []
    for name, module in MODULES.items():
        path = os.path.join(out, f"{name}.json")
        if not os.path.exists(path):
            continue
        with open(path) as f:
            result = json.load(f)
        section = module.markdown(result)
        if result["notes"]:
            section += "\n\nNotes:\n" + "\n".join(f"- {n}" for n in result["notes"])
        sections.append(section)
        plots.draw(result, out)
    with open(os.path.join(out, "summary.md"), "w") as f:
        f.write("\n\n".join(sections) + "\n")
    print("\n\n".join(sections))


if __name__ == "__main__":
    main(sys.argv[1])
