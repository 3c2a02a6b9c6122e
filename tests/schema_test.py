#!/usr/bin/env python3
"""Checks the JSON Schemas of schemas/ against the code that reads the documents.

Run by CTest (tests/schema.cmake) as:

    schema_test.py GANTRY SOURCE_DIR [--verbose]

It checks, and prints one line per file:
  1. each schema itself (app, desired_state, call): a valid draft 2020-12
     schema with $id, title and description, and a description on every
     property and $def so that editors show help;
  2. the examples: examples/*/app.yaml (read with PyYAML) and the canonical
     JSON of examples/*/app.yaml and app.lua (`gantry show --json`, member
     "app") are valid against the schema;
  3. agreement: every tests/specs/good/*.yaml is accepted by both the loader
     and the schema, and so is its canonical JSON (which the loader must also
     read back to itself); every tests/specs/bad/*.yaml is rejected by both,
     and gantry's one error contains the text of the file's `# expect: TEXT`
     line and points at the line named by `# line: N`;
  4. the agent's documents, tests/agent_documents/: every desired/good/*.json
     is valid against schemas/desired_state.schema.json and every
     desired/bad/*.json invalid; every desired/bad-agent-only/*.json is valid
     (the agent refuses it for a rule JSON Schema cannot express, which the
     schema's description lists); call/good and call/bad likewise against
     schemas/call.schema.json. agents_test reads the same files with the C++
     readers (ParseDesiredState, ParseCallRequest) and expects the same.
     usage/good and usage/bad likewise against schemas/usage.schema.json (the
     answer of GET /v1/usage, which only the agent writes).

PyYAML reads YAML 1.1 and the loader YAML 1.2, so the specs avoid the
scalars the two type differently (yes/no/on/off, 1e3 without a point,
1000:1000 unquoted, 010, 1_000). Exits 1 if anything disagrees.
"""

import argparse
from importlib import metadata
import json
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile

try:
    import jsonschema
    import yaml
except ImportError as error:  # pragma: no cover - a missing dependency is a setup error
    sys.exit(f"schema_test: {error}; install python3-jsonschema and python3-yaml (.ci/install-deps)")

if not hasattr(jsonschema, "Draft202012Validator"):
    sys.exit("schema_test: jsonschema 4.0 or newer is needed (Draft202012Validator)")

DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"


class Report:
    """Counts and prints results, one line per check."""

    def __init__(self, verbose):
        self.verbose = verbose
        self.failures = []
        self.passes = 0

    def ok(self, name, detail=""):
        self.passes += 1
        print(f"PASS {name}" + (f"  ({detail})" if detail and self.verbose else ""))

    def fail(self, name, reasons):
        self.failures.append(name)
        print(f"FAIL {name}")
        for reason in reasons:
            for line in str(reason).splitlines():
                print(f"     {line}")

    def check(self, name, reasons, detail=""):
        if reasons:
            self.fail(name, reasons)
        else:
            self.ok(name, detail)


def schema_errors(validator, instance):
    """Every schema error, as 'path: message' lines, deepest first."""
    errors = sorted(validator.iter_errors(instance), key=lambda e: (-len(e.absolute_path), list(map(str, e.absolute_path))))
    lines = []
    for error in errors:
        path = ".".join(str(part) for part in error.absolute_path) or "(root)"
        message = error.message if len(error.message) <= 200 else error.message[:200] + "..."
        lines.append(f"{path}: {message}")
    return lines


def run_gantry(gantry, *args):
    return subprocess.run([str(gantry), *args], capture_output=True, text=True, timeout=60)


def canonical_app(gantry, spec):
    """The canonical JSON `gantry show --json` prints for a spec, member "app"."""
    result = run_gantry(gantry, "show", "--json", str(spec))
    if result.returncode != 0:
        raise RuntimeError(f"gantry show --json {spec} exited {result.returncode}:\n{result.stderr.strip()}")
    return json.loads(result.stdout)["app"]


def relative(path, root):
    try:
        return str(pathlib.Path(path).relative_to(root))
    except ValueError:
        return str(path)


# --- 1. the schema ----------------------------------------------------------


def undocumented_properties(schema):
    """Paths of properties (and $defs) that carry no description, directly or via $ref."""
    defs = schema.get("$defs", {})

    def described(subschema):
        if not isinstance(subschema, dict):
            return True  # a boolean schema
        if "description" in subschema:
            return True
        ref = subschema.get("$ref", "")
        if ref.startswith("#/$defs/"):
            return "description" in defs.get(ref[len("#/$defs/"):], {})
        return False

    missing = []

    def walk(node, path):
        if isinstance(node, dict):
            for name, subschema in node.get("properties", {}).items():
                if not described(subschema):
                    missing.append(f"{path}/properties/{name}")
            for key, value in node.items():
                walk(value, f"{path}/{key}")
        elif isinstance(node, list):
            for index, value in enumerate(node):
                walk(value, f"{path}/{index}")

    walk(schema, "#")
    for name, subschema in defs.items():
        if "description" not in subschema:
            missing.append(f"#/$defs/{name}")
    return missing


def check_schema(schema_path, source, report):
    """The schema at `schema_path` if it is sound, else None (and a failure)."""
    name = relative(schema_path, source)
    try:
        schema = json.loads(schema_path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        report.fail(name, [f"cannot read the schema: {error}"])
        return None
    reasons = []
    if schema.get("$schema") != DRAFT_2020_12:
        reasons.append(f'"$schema" must be {DRAFT_2020_12}')
    for key in ("$id", "title", "description"):
        if not schema.get(key):
            reasons.append(f'the schema needs "{key}"')
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.exceptions.SchemaError as error:
        reasons.append(f"not a valid draft 2020-12 schema: {error.message} at {'/'.join(map(str, error.path))}")
    reasons += [f"no description: {path}" for path in undocumented_properties(schema)]
    report.check(name, reasons, "valid draft 2020-12, every property described")
    return schema if not reasons else None


# --- 2. the examples ----------------------------------------------------------


def check_examples(gantry, source, validator, report):
    examples = sorted((source / "examples").glob("*/app.yaml")) + sorted((source / "examples").glob("*/app.lua"))
    if not examples:
        report.fail("examples", ["no examples/*/app.yaml or app.lua found"])
    for spec in examples:
        name = relative(spec, source)
        if spec.suffix == ".yaml":
            try:
                document = yaml.safe_load(spec.read_text())
            except yaml.YAMLError as error:
                report.fail(name, [f"PyYAML cannot read it: {error}"])
                continue
            report.check(name, schema_errors(validator, document), "as written")
        try:
            app = canonical_app(gantry, spec)
        except (RuntimeError, ValueError, KeyError) as error:
            report.fail(f"{name} (canonical)", [error])
            continue
        report.check(f"{name} (canonical)", schema_errors(validator, app), "gantry show --json")


# --- 3. good and bad specs ------------------------------------------------------

LOCATION = re.compile(r"^(?P<file>.+?):(?P<line>\d+):(?P<column>\d+): (?P<message>.*)$")


def canonical_round_trip(gantry, spec, app):
    """Reasons the canonical JSON of `spec` is not read back by the loader to itself.

    The canonical form is written as a YAML (JSON is YAML) file beside a copy of
    the spec's folder, so that its relative paths still resolve."""
    with tempfile.TemporaryDirectory(prefix="gantry-schema-") as temporary:
        context = pathlib.Path(temporary) / "context"
        shutil.copytree(spec.parent, context)
        canonical = context / "canonical-form.yaml"
        canonical.write_text(json.dumps(app, indent=1, sort_keys=True))
        try:
            again = canonical_app(gantry, canonical)
        except (RuntimeError, ValueError, KeyError) as error:
            return [f"the loader rejects the canonical form: {error}"]
    if again != app:
        return ["the canonical form of the canonical form differs from it"]
    return []


def check_good(gantry, source, spec, validator, report):
    name = relative(spec, source)
    reasons = []
    result = run_gantry(gantry, "validate", str(spec))
    if result.returncode != 0:
        reasons.append(f"the loader rejects it (exit {result.returncode}):")
        reasons += ["  " + line for line in result.stderr.strip().splitlines()]
    try:
        document = yaml.safe_load(spec.read_text())
    except yaml.YAMLError as error:
        report.fail(name, reasons + [f"PyYAML cannot read it: {error}"])
        return
    errors = schema_errors(validator, document)
    if errors:
        reasons.append("the schema rejects it:")
        reasons += ["  " + line for line in errors]
    if result.returncode == 0:
        try:
            app = canonical_app(gantry, spec)
            errors = schema_errors(validator, app)
            if errors:
                reasons.append("the schema rejects its canonical JSON:")
                reasons += ["  " + line for line in errors]
            reasons += canonical_round_trip(gantry, spec, app)
        except (RuntimeError, ValueError, KeyError) as error:
            reasons.append(str(error))
    report.check(name, reasons, "loader ok, schema ok, canonical ok")


def read_header(spec):
    """The `# expect: TEXT` and `# line: N` of a bad spec's first two lines."""
    lines = spec.read_text().splitlines()
    expect = re.match(r"^# expect: (.+)$", lines[0]) if lines else None
    line = re.match(r"^# line: (\d+)$", lines[1]) if len(lines) > 1 else None
    if not expect or not line:
        return None, None
    return expect.group(1), int(line.group(1))


def check_bad(gantry, source, spec, validator, report):
    name = relative(spec, source)
    expect, expected_line = read_header(spec)
    if expect is None:
        report.fail(name, ["the first two lines must be `# expect: TEXT` and `# line: N`"])
        return
    reasons = []
    result = run_gantry(gantry, "validate", str(spec))
    located = []
    for line in result.stderr.splitlines():
        match = LOCATION.match(line)
        if match and match.group("file") == str(spec):
            located.append(match)
    if result.returncode == 0:
        reasons.append("the loader accepts it")
    elif result.returncode != 1:
        reasons.append(f"gantry exited {result.returncode}, not 1 (a user error):\n{result.stderr.strip()}")
    else:
        if len(located) != 1:
            reasons.append(f"gantry reports {len(located)} located errors, not one (one mistake per file):")
            reasons += ["  " + line for line in result.stderr.strip().splitlines()]
        matching = [match for match in located if expect in match.group("message")]
        if not matching:
            reasons.append(f"no error contains {expect!r}; gantry said:")
            reasons += ["  " + line for line in result.stderr.strip().splitlines()]
        elif int(matching[0].group("line")) != expected_line:
            reasons.append(f"the error points at line {matching[0].group('line')}, not line {expected_line}: "
                           f"{matching[0].group(0)}")
    try:
        document = yaml.safe_load(spec.read_text())
    except yaml.YAMLError as error:
        report.fail(name, reasons + [f"PyYAML cannot read it: {error}"])
        return
    errors = schema_errors(validator, document)
    if not errors:
        reasons.append("the schema accepts it")
    loader_says = located[0].group(0) if located else result.stderr.strip()
    detail = f"loader: {loader_says} | schema: {errors[0] if errors else '-'}"
    report.check(name, reasons, detail)


# --- 4. the agent's documents ----------------------------------------------


def read_json(path):
    """The JSON document of `path`, or raises ValueError."""
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"cannot read it as JSON: {error}") from error


def check_agent_documents(source, folder, validator, report):
    """Good documents of `folder` pass the schema, bad ones fail it, and
    bad-agent-only ones pass it. Returns (good, bad, agent_only) counts."""
    expectations = (("good", True), ("bad", False), ("bad-agent-only", True))
    counts = []
    for kind, valid in expectations:
        documents = sorted((folder / kind).glob("*.json"))
        counts.append(len(documents))
        if not documents and kind != "bad-agent-only":
            report.fail(relative(folder / kind, source), ["no *.json documents found"])
        for path in documents:
            name = relative(path, source)
            try:
                document = read_json(path)
            except ValueError as error:
                report.fail(name, [error])
                continue
            errors = schema_errors(validator, document)
            if valid:
                reasons = ["the schema rejects it:"] + ["  " + line for line in errors] if errors else []
                report.check(name, reasons, "schema ok")
            else:
                reasons = [] if errors else ["the schema accepts it"]
                report.check(name, reasons, f"schema: {errors[0] if errors else '-'}")
    return tuple(counts)


def jsonschema_version():
    try:
        return metadata.version("jsonschema")
    except metadata.PackageNotFoundError:
        return "(version unknown)"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("gantry", type=pathlib.Path, help="the gantry binary")
    parser.add_argument("source", type=pathlib.Path, help="the source tree (PROJECT_SOURCE_DIR)")
    parser.add_argument("-v", "--verbose", action="store_true", help="show what each side said")
    args = parser.parse_args()
    source = args.source.resolve()
    report = Report(args.verbose)

    print(f"jsonschema {jsonschema_version()}, PyYAML {yaml.__version__}, gantry {args.gantry}")
    schemas = {name: check_schema(source / "schemas" / f"{name}.schema.json", source, report)
               for name in ("app", "desired_state", "call", "call_event", "plan", "usage")}
    if any(schema is None for schema in schemas.values()):
        print("schema_test: a schema is broken; nothing else checked")
        return 1
    validator = jsonschema.Draft202012Validator(schemas["app"])

    check_examples(args.gantry, source, validator, report)

    specs = source / "tests" / "specs"
    good = sorted((specs / "good").glob("*.yaml"))
    bad = sorted((specs / "bad").glob("*.yaml"))
    if not good or not bad:
        report.fail("tests/specs", ["no good/*.yaml or bad/*.yaml specs found"])
    for spec in good:
        check_good(args.gantry, source, spec, validator, report)
    for spec in bad:
        check_bad(args.gantry, source, spec, validator, report)

    documents = source / "tests" / "agent_documents"
    desired = check_agent_documents(source, documents / "desired",
                                    jsonschema.Draft202012Validator(schemas["desired_state"]), report)
    call = check_agent_documents(source, documents / "call",
                                 jsonschema.Draft202012Validator(schemas["call"]), report)
    check_agent_documents(source, documents / "usage",
                          jsonschema.Draft202012Validator(schemas["usage"]), report)
    check_agent_documents(source, documents / "call_event",
                          jsonschema.Draft202012Validator(schemas["call_event"]), report)

    print(f"\n{report.passes} passed, {len(report.failures)} failed "
          f"({len(good)} good specs, {len(bad)} bad specs; "
          f"desired state: {desired[0]} good, {desired[1]} bad, {desired[2]} bad for the agent only; "
          f"call: {call[0]} good, {call[1]} bad)")
    if report.failures:
        print("failed: " + ", ".join(report.failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
