"""pulumi/actions' stand-in: append the call to calls.jsonl, then act on the stack's outputs.

`output` sets the step outputs from <state>/<stack>.json; `up` stores the image of its
config-map there (as a real `up` would make the program's `image` output); `preview` changes
nothing. Every input is recorded so that the lifecycle test can assert what each deploy got.
"""

import json
import os
from pathlib import Path

import yaml

state = Path(os.environ["PULUMI_STAND_IN_STATE"])
state.mkdir(parents=True, exist_ok=True)
command, stack = os.environ["COMMAND"], os.environ["STACK"]
config = yaml.safe_load(os.environ.get("CONFIG_MAP") or "") or {}
call = {
    "command": command,
    "stack": stack,
    "sha": os.environ.get("GITHUB_SHA", ""),
    "cloud_url": os.environ.get("CLOUD_URL", ""),
    "policy_packs": os.environ.get("POLICY_PACKS", ""),
    "policy_pack_configs": os.environ.get("POLICY_PACK_CONFIGS", ""),
    "config": {key: value.get("value") for key, value in config.items()},
    "refresh": os.environ.get("REFRESH", ""),
}
with (state / "calls.jsonl").open("a", encoding="utf-8") as calls:
    calls.write(json.dumps(call) + "\n")

outputs_file = state / f"{stack}.json"
outputs = json.loads(outputs_file.read_text(encoding="utf-8")) if outputs_file.is_file() else {}
if command == "up":
    outputs["image"] = call["config"].get("image", "")
    outputs.setdefault("endpoints", {})
    outputs_file.write_text(json.dumps(outputs), encoding="utf-8")
with open(os.environ["GITHUB_OUTPUT"], "a", encoding="utf-8") as out:
    if command == "output":
        out.write(f"image={outputs.get('image', '')}\n")
        out.write(f"endpoints={json.dumps(outputs.get('endpoints', {}))}\n")
    out.write(f"output=pulumi {command} of {stack} (stand-in)\n")
print(f"pulumi {command} {stack}: {json.dumps(call['config'])}")
