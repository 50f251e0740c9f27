#!/usr/bin/env python3
"""Checks cofre's JSON outputs against AWS's own service models (botocore's data folder).

Run by tests/botocore.rs; stdlib + botocore only.

    botocore_check.py check CASES [--substitutes FILE] [--always FILE]
        CASES holds one CLI output per file, named <service>.<Operation>.<n>.json (the
        service as botocore names it: kms, ec2, ebs). Each is validated against the OUTPUT
        shape of its operation: structures (unknown members, missing required members),
        lists, maps, strings (enums, length), integers and longs (range), floats, booleans,
        timestamps, blobs (base64 that decodes; length). An empty file stands for a command
        that printed nothing: right for an operation with no output shape, else checked as {}.
        Prints one line per problem, `kms.ListKeys.1.json: Keys[0]: unknown member Arn`, and
        exits 1 if there is any; a problem found in several entries of one list is one line,
        `… (and in 7 more list entries)`. Then, on stderr, one `note:` line per operation and
        timestamp encoding, saying how the CLI printed timestamps (KMS's JSON protocol sends
        epoch seconds; the CLI may print those or ISO-8601 strings, and both are accepted).

        --substitutes FILE: JSON {"<service>.<Operation>": {"<Path>": "<member>"}} naming the
        places where the CLI deliberately prints a file path instead of a blob, e.g.
        {"kms.GetParametersForImport": {"PublicKeyFile": "PublicKey"}}. <Path> is the member's
        path in the output ("PublicKeyFile", or "A.B" inside a structure). There the path
        must be a non-empty string, and it counts as the blob member being present.

        --always FILE: JSON {"<service>.<Operation>": ["<Path>", ...]}: members the model does
        not mark required but AWS returns in every response (its API reference), as
        "GrantToken", "KeyMetadata.KeyId" or "Keys[].KeyArn" (in every entry of the list). A
        missing one, or null, is a problem: `missing member GrantToken (AWS always returns it)`.

    botocore_check.py uncovered SERVICE CASES
        Prints, one a line, the operations of SERVICE that have no case file in CASES.

    botocore_check.py cross-account
        Prints, one a line, each KMS operation and what its documentation says of
        "Cross-account use" (`Yes`, `No`, or the start of its sentence), tab-separated.

    botocore_check.py version
        Prints botocore's version.
"""

import base64
import binascii
import datetime
import json
import os
import re
import sys

import botocore
import botocore.session

CASE_NAME = re.compile(r"^([a-z0-9-]+)\.([A-Za-z0-9]+)\.([0-9]+)\.json$")
ISO_8601 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:?\d{2})?$"
)


def _session():
    return botocore.session.get_session()


class Checker:
    def __init__(self, case, substitutes):
        self.case = case
        self.substitutes = substitutes  # {path: blob member}
        self.problems = []
        self.timestamps = {}  # "epoch seconds" | "ISO-8601 string" -> [paths]

    def problem(self, path, message):
        self.problems.append((path, message))

    def lines(self):
        """The problems, one line each; one problem in several entries of a list is one line."""
        folded = {}  # (path with list indexes blanked, message) -> paths
        for path, message in self.problems:
            paths = folded.setdefault((re.sub(r"\[\d+\]", "[]", path), message), [])
            if path not in paths:
                paths.append(path)
        out = []
        for (_, message), paths in folded.items():
            where = f"{paths[0]}: " if paths[0] else ""
            more = f" (and in {len(paths) - 1} more list entries)" if len(paths) > 1 else ""
            out.append(f"{self.case}: {where}{message}{more}")
        return out

    def always(self, value, path, parts):
        """Checks that the member path `parts` (`Keys[].KeyArn` split on dots) is present."""
        if not parts:
            return
        name, rest = parts[0], parts[1:]
        each = name.endswith("[]")
        name = name[:-2] if each else name
        if not isinstance(value, dict):
            return  # a type problem, reported already
        here = f"{path}.{name}" if path else name
        if name not in value or value[name] is None:
            self.problem(path, f"missing member {name} (AWS always returns it)")
            return
        if each:
            if isinstance(value[name], list):
                for i, v in enumerate(value[name]):
                    self.always(v, f"{here}[{i}]", rest)
        else:
            self.always(value[name], here, rest)

    def check(self, shape, value, path):
        kind = shape.type_name
        check = getattr(self, "_" + kind, None)
        if check is None:
            self.problem(path, f"cannot check shape type {kind} ({shape.name})")
            return
        check(shape, value, path)

    def _structure(self, shape, value, path):
        if not isinstance(value, dict):
            self.problem(path, f"expected an object ({shape.name}), got {_kind(value)}")
            return
        members = shape.members
        present = set()
        for name, v in value.items():
            sub = f"{path}.{name}" if path else name
            if name in members:
                present.add(name)
                self.check(members[name], v, sub)
            elif sub in self.substitutes and self.substitutes[sub] in members:
                blob = self.substitutes[sub]
                present.add(blob)
                if not isinstance(v, str) or not v:
                    self.problem(sub, f"expected a file path (for {blob}), got {_kind(v)}")
            else:
                self.problem(path, f"unknown member {name}")
        for name in shape.required_members:
            if name not in present:
                self.problem(path, f"missing required member {name}")
        # A union (e.g. ebs responses never have one, but be exact): at most one member.
        if shape.metadata.get("union") and len(present) > 1:
            self.problem(path, f"union {shape.name} has {len(present)} members set")

    def _list(self, shape, value, path):
        if not isinstance(value, list):
            self.problem(path, f"expected a list ({shape.name}), got {_kind(value)}")
            return
        self._length(shape, len(value), path, "entries")
        for i, v in enumerate(value):
            self.check(shape.member, v, f"{path}[{i}]")

    def _map(self, shape, value, path):
        if not isinstance(value, dict):
            self.problem(path, f"expected a map ({shape.name}), got {_kind(value)}")
            return
        self._length(shape, len(value), path, "entries")
        for k, v in value.items():
            self.check(shape.key, k, f"{path}{{{k}}}")
            self.check(shape.value, v, f"{path}[{json.dumps(k)}]")

    def _string(self, shape, value, path):
        if not isinstance(value, str):
            self.problem(path, f"expected a string ({shape.name}), got {_kind(value)}")
            return
        if shape.enum and value not in shape.enum:
            self.problem(path, f"{value!r} is not in enum {shape.name} ({', '.join(shape.enum)})")
        self._length(shape, len(value), path, "characters")

    def _integer(self, shape, value, path):
        if isinstance(value, bool) or not isinstance(value, int):
            self.problem(path, f"expected an integer ({shape.name}), got {_kind(value)}")
            return
        if shape.type_name == "integer" and not -(2**31) <= value < 2**31:
            self.problem(path, f"{value} does not fit a 32-bit integer ({shape.name})")
        if not -(2**63) <= value < 2**63:
            self.problem(path, f"{value} does not fit a 64-bit long ({shape.name})")
        lo, hi = shape.metadata.get("min"), shape.metadata.get("max")
        if lo is not None and value < lo:
            self.problem(path, f"{value} is below the minimum {lo} of {shape.name}")
        if hi is not None and value > hi:
            self.problem(path, f"{value} is above the maximum {hi} of {shape.name}")

    _long = _integer

    def _float(self, shape, value, path):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.problem(path, f"expected a number ({shape.name}), got {_kind(value)}")

    _double = _float

    def _boolean(self, shape, value, path):
        if not isinstance(value, bool):
            self.problem(path, f"expected a boolean ({shape.name}), got {_kind(value)}")

    def _timestamp(self, shape, value, path):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            self.timestamps.setdefault("epoch seconds", []).append(path)
        elif isinstance(value, str):
            if not ISO_8601.match(value) or _parse_iso(value) is None:
                self.problem(path, f"{value!r} is not an ISO-8601 timestamp ({shape.name})")
                return
            self.timestamps.setdefault("ISO-8601 string", []).append(path)
        else:
            self.problem(
                path,
                f"expected a timestamp, epoch seconds or ISO-8601 ({shape.name}), got {_kind(value)}",
            )

    def _blob(self, shape, value, path):
        if not isinstance(value, str):
            self.problem(path, f"expected base64 ({shape.name}), got {_kind(value)}")
            return
        try:
            data = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            self.problem(path, f"is not valid base64 ({shape.name})")
            return
        self._length(shape, len(data), path, "bytes")

    def _length(self, shape, n, path, unit):
        lo, hi = shape.metadata.get("min"), shape.metadata.get("max")
        if lo is not None and n < lo:
            self.problem(path, f"{n} {unit}, fewer than the minimum {lo} of {shape.name}")
        if hi is not None and n > hi:
            self.problem(path, f"{n} {unit}, more than the maximum {hi} of {shape.name}")


def _parse_iso(s):
    t = s.replace("z", "Z").replace("t", "T")
    if t.endswith("Z"):
        t = t[:-1] + "+00:00"
    # fromisoformat (3.11+) takes fractions of any length; older ones want 3 or 6 digits.
    m = re.match(r"^(.*\.)(\d+)(.*)$", t)
    if m:
        t = m.group(1) + (m.group(2) + "000000")[:6] + m.group(3)
    try:
        return datetime.datetime.fromisoformat(t)
    except ValueError:
        return None


def _kind(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return f"boolean {json.dumps(v)}"
    if isinstance(v, (int, float)):
        return f"number {v}"
    if isinstance(v, str):
        return f"string {json.dumps(v)[:60]}"
    if isinstance(v, list):
        return "a list"
    return "an object"


def _paginator(session, svc, op):
    """The paginator botocore (and so the AWS CLI) has for an operation, if any."""
    try:
        return session.get_paginator_model(svc).get_paginator(op)
    except Exception:  # no paginators for the service, or none for this operation
        return None


def check_cases(folder, substitutes, always):
    session = _session()
    models = {}
    problems = []
    notes = {}  # (svc.Op, encoding) -> set of paths
    files = sorted(os.listdir(folder))
    if not files:
        problems.append(f"{folder}: no case files")
    for name in files:
        m = CASE_NAME.match(name)
        if not m:
            problems.append(f"{name}: not named <service>.<Operation>.<n>.json")
            continue
        svc, op = m.group(1), m.group(2)
        try:
            if svc not in models:
                models[svc] = session.get_service_model(svc)
            model = models[svc]
        except Exception as e:  # botocore's UnknownServiceError and friends
            problems.append(f"{name}: no botocore model for service {svc}: {e}")
            continue
        if op not in model.operation_names:
            problems.append(f"{name}: {svc} has no operation {op}")
            continue
        shape = model.operation_model(op).output_shape
        with open(os.path.join(folder, name), encoding="utf-8") as f:
            text = f.read()
        if not text.strip():
            if shape is None:
                continue
            value = {}
        else:
            try:
                value = json.loads(text)
            except ValueError as e:
                problems.append(f"{name}: not JSON: {e}")
                continue
            if shape is None:
                problems.append(
                    f"{name}: {op} has no output in the model, but the CLI printed {_kind(value)}"
                    + (f" with members {', '.join(value)}" if isinstance(value, dict) and value else "")
                )
                continue
        c = Checker(name, substitutes.get(f"{svc}.{op}", {}))
        # The CLI pages a list as the AWS CLI does: it gathers the pages, drops the service's
        # own marker members (the paginator's output token and "more results" flag) and prints
        # `NextToken` when --max-items stopped early. The page members are checked if present.
        paginator = _paginator(session, svc, op)
        if paginator is not None and isinstance(value, dict) and "NextToken" in value:
            if "NextToken" not in shape.members:
                token = value.pop("NextToken")
                if not isinstance(token, str) or not token:
                    c.problem("NextToken", f"expected a non-empty string, got {_kind(token)}")
        c.check(shape, value, "")
        for member in always.get(f"{svc}.{op}", []):
            c.always(value, "", member.split("."))
        problems.extend(c.lines())
        for enc, paths in c.timestamps.items():
            notes.setdefault((f"{svc}.{op}", enc), set()).update(
                re.sub(r"\[[^\]]*\]", "[]", p) for p in paths
            )
    for p in problems:
        print(p)
    for (op, enc), paths in sorted(notes.items()):
        print(f"note: {op}: timestamps as {enc}: {', '.join(sorted(paths))}", file=sys.stderr)
    return 1 if problems else 0


def uncovered(service, folder):
    model = _session().get_service_model(service)
    covered = set()
    for name in os.listdir(folder):
        m = CASE_NAME.match(name)
        if m and m.group(1) == service:
            covered.add(m.group(2))
    for op in sorted(model.operation_names):
        if op not in covered:
            print(op)
    return 0


def cross_account():
    model = _session().get_service_model("kms")
    for op in sorted(model.operation_names):
        doc = re.sub(r"<[^>]+>", " ", model.operation_model(op).documentation or "")
        m = re.search(r"Cross-account use\s*:?\s*([A-Za-z][^.]*)", doc)
        word = m.group(1).strip() if m else "?"
        print(f"{op}\t{'Yes' if word.startswith('Yes') else 'No' if word.startswith('No') and not word.startswith('Not') else word}")
    return 0


def main(argv):
    usage = __doc__
    if len(argv) >= 2 and argv[0] == "check":
        tables = {"--substitutes": {}, "--always": {}}
        rest = argv[2:]
        while rest:
            if rest[0] not in tables or len(rest) < 2:
                print(usage, file=sys.stderr)
                return 2
            with open(rest[1], encoding="utf-8") as f:
                tables[rest[0]] = json.load(f)
            rest = rest[2:]
        return check_cases(argv[1], tables["--substitutes"], tables["--always"])
    if len(argv) == 3 and argv[0] == "uncovered":
        return uncovered(argv[1], argv[2])
    if argv == ["cross-account"]:
        return cross_account()
    if argv == ["version"]:
        print(botocore.__version__)
        return 0
    print(usage, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
