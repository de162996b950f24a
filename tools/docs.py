"""Write the interface documents: AsyncAPI per service, OpenAPI per HTTP service, JSON schema per message.

`make docs` runs it; the documents land in docs/asyncapi, docs/openapi and docs/contracts.
"""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SERVICES = ("ingest", "tickets", "triggers", "notify", "portal")


def main(argv: list[str] | None = None) -> None:
    """Write every document."""
    import argparse

    from contracts import REGISTRY, Envelope

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    out_dir = parser.parse_args(argv).out
    for folder in ("asyncapi", "openapi", "contracts"):
        (out_dir / folder).mkdir(parents=True, exist_ok=True)
    for service in SERVICES:
        for kind, suffix in (("asyncapi", "yaml"), ("openapi", "json")):
            out = out_dir / kind / f"{service}.{suffix}"
            subprocess.run([str(BIN / service), kind, "--out", str(out)], check=True)  # noqa: S603
    schemas = {"Envelope": Envelope.model_json_schema()} | {
        name: model.model_json_schema() for name, model in REGISTRY.models().items()
    }
    for name, schema in schemas.items():
        version = getattr(REGISTRY.models().get(name), "VERSION", 1)
        (out_dir / "contracts" / f"{name}.v{version}.json").write_text(json.dumps(schema, indent=2) + "\n")
    print(f"wrote {len(schemas)} contract schemas to docs/contracts")


if __name__ == "__main__":
    main()
